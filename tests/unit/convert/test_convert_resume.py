"""kill -9 at any point, rerun: finished shards are reused and the output is byte-identical to an
uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from convert_testlib import tensorwise_sha256, write_model

pytestmark = pytest.mark.slow  # each test converts ~100 MB three to five times

CLI = "import sys; from adaptgate.cli.convert import command; command(sys.argv[1:])"


def _big_model(root: Path) -> Path:
    """~60 MB of FP8 weights in three shards, scales in the shard after their weight."""
    rng = np.random.default_rng(0)
    files: dict[str, dict[str, torch.Tensor]] = {
        f"model-0000{i}-of-00003.safetensors": {} for i in (1, 2, 3)
    }
    names = list(files)
    for i in range(30):
        codes = rng.integers(0, 256, (1024, 2048), dtype=np.uint8)
        codes[(codes & 0x7F) == 0x7F] = 0x3A
        q = torch.from_numpy(codes).view(torch.float8_e4m3fn)
        s = torch.from_numpy(rng.uniform(1e-4, 1e-2, (8, 16)).astype(np.float32))
        files[names[i % 3]][f"model.layers.{i}.mlp.up_proj.weight"] = q
        files[names[(i + 1) % 3]][f"model.layers.{i}.mlp.up_proj.weight_scale_inv"] = s
        files[names[i % 3]][f"model.layers.{i}.input_layernorm.weight"] = torch.ones(
            2048, dtype=torch.bfloat16
        )
    return write_model(
        root, files, extra={"tokenizer.json": "{}", "chat_template.jinja": "{{ x }}"}
    )


def _start(src: Path, out: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            CLI,
            str(src),
            str(out),
            "--to",
            "bf16",
            "--max-shard-size",
            "8MB",
            "--workers",
            "2",
            "--quiet",
        ],
        env=env,
        stderr=subprocess.PIPE,
    )


def _kill_after(proc: subprocess.Popen[bytes], partial: Path, markers: int) -> bool:
    """SIGKILL once ``markers`` shards are marked done; False if the run finished first."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done = len(list((partial / ".convert").glob("*.done.json"))) if partial.exists() else 0
        if done >= markers:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.002)
    raise AssertionError("conversion made no progress")


def _files(path: Path) -> dict[str, bytes]:
    return {
        p.name: p.read_bytes()
        for p in sorted(path.iterdir())
        if p.is_file() and p.name != "conversion.json"
    }


def test_kill_and_resume_gives_identical_output(tmp_path):
    src = _big_model(tmp_path / "src")
    env = {**os.environ, "ADAPTGATE_KERNEL": "numpy"}  # slower, so a kill lands mid-run
    reference = tmp_path / "reference"
    assert _start(src, reference, env).wait() == 0
    out = tmp_path / "out"
    partial = tmp_path / "out.partial"

    # killed before any shard finished, then after 3, then left to finish
    for markers in (0, 3):
        proc = _start(src, out, env)
        if markers == 0:
            time.sleep(0.5)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        elif not _kill_after(proc, partial, markers):
            break
        assert not out.exists()
    proc = _start(src, out, env)
    assert proc.wait() == 0, proc.stderr.read().decode() if proc.stderr else ""
    assert not partial.exists()
    assert _files(out) == _files(reference)
    import json

    record = json.loads((out / "conversion.json").read_text())
    assert record["resumed_shards"], "the last run should have reused shards"
    for source in record["sources"]:  # kept shards' tensors are read just for the digest
        assert source["digest"] == tensorwise_sha256(src / source["file"])
    assert len(record["tensors"]) == len(
        json.loads((reference / "conversion.json").read_text())["tensors"]
    )


def test_a_corrupted_finished_shard_is_rewritten(tmp_path):
    src = _big_model(tmp_path / "src")
    env = {**os.environ, "ADAPTGATE_KERNEL": "numpy"}
    out, partial = tmp_path / "out", tmp_path / "out.partial"
    proc = _start(src, out, env)
    assert _kill_after(proc, partial, 3)
    victim = sorted(p for p in partial.glob("*.safetensors"))[0]
    data = bytearray(victim.read_bytes())
    data[-1] ^= 0xFF
    victim.write_bytes(bytes(data))
    assert _start(src, out, env).wait() == 0
    reference = tmp_path / "reference"
    assert _start(src, reference, env).wait() == 0
    assert _files(out) == _files(reference)
    import json

    assert victim.name not in json.loads((out / "conversion.json").read_text())["resumed_shards"]
