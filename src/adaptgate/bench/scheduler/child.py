"""A client worker process: ``python -m adaptgate.bench.scheduler.child``.

Protocol over stdin/stdout (pickle, between two processes of one run on one machine): read the
plan, write ``R`` once ready (imports done), read the epoch, run, write the output.
"""

from __future__ import annotations

import pickle
import sys


def main() -> None:
    from adaptgate.bench.scheduler.loop import run_worker

    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    plan = pickle.load(stdin)
    stdout.write(b"R")
    stdout.flush()
    plan.epoch = pickle.load(stdin)
    output = run_worker(plan)
    pickle.dump(output, stdout, protocol=pickle.HIGHEST_PROTOCOL)
    stdout.flush()


if __name__ == "__main__":
    main()
