"""Kills a managed server's process group when adaptgate goes away, however it goes away.

``python -m adaptgate.serve.watchdog PGID TMPDIR`` runs in its own session and reads its stdin,
a pipe whose other end only adaptgate holds. When that pipe closes -- adaptgate exited, crashed,
or was SIGKILLed -- it sends SIGTERM to the group, then SIGKILL after a grace period, and
removes the server's private temporary directory. Imports nothing from adaptgate: it must start
fast and never fail on an import.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import time
from pathlib import Path

GRACE_S = 10.0


def group_alive(pgid: int) -> bool:
    """True while a non-zombie process of the group exists."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text(encoding="ascii", errors="replace")
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 2 and fields[0] != "Z" and int(fields[2]) == pgid:
            return True
    return False


def kill_group(pgid: int, grace: float = GRACE_S) -> None:
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, grace)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not group_alive(pgid):
                return
            time.sleep(0.2)


def main(argv: list[str]) -> int:
    pgid = int(argv[1])
    tmpdir = argv[2] if len(argv) > 2 else ""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        while sys.stdin.buffer.read(4096):
            pass
    except OSError:
        pass
    if group_alive(pgid):
        kill_group(pgid)
    if tmpdir and Path(tmpdir).name.startswith("adaptgate-vllm-"):
        shutil.rmtree(tmpdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
