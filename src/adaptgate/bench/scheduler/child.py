"""A client worker process: ``python -m adaptgate.bench.scheduler.child``.

Protocol over stdin/stdout (pickle, between two processes of one run on one machine): read the
plan, open the connections, write ``R``, read the epoch, run, write the output.
"""

from __future__ import annotations

import asyncio
import pickle
import sys


def main() -> None:
    from adaptgate.bench.scheduler.loop import run_worker

    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    plan = pickle.load(stdin)

    async def get_epoch() -> float:
        """Called once the connections are open: report ready, wait for the shared epoch."""
        stdout.write(b"R")
        stdout.flush()
        epoch: float = await asyncio.get_running_loop().run_in_executor(None, pickle.load, stdin)
        return epoch

    output = run_worker(plan, get_epoch)
    pickle.dump(output, stdout, protocol=pickle.HIGHEST_PROTOCOL)
    stdout.flush()


if __name__ == "__main__":
    main()
