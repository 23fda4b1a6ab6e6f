"""Dumps of tiny models built once per session, planted defects, and a fake OpenAI server that
answers from a reference dump."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import torch

PROMPTS = [
    {"id": "english", "text": "The future of AI is"},
    {"id": "chinese", "text": "请用中文介绍人工智能的基本概念："},
    {"id": "code", "text": "def fibonacci(n: int) -> int:\n    "},
]
LAYERS = 4  # the planted defects sit in layer 2, so "the first layer" would be a wrong answer
DEFECT_LAYER = 2


@pytest.fixture(scope="session")
def prompts_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("prompts") / "prompts.jsonl"
    path.write_text("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in PROMPTS), "utf-8")
    return path


@pytest.fixture(scope="session")
def dump_of(tmp_path_factory: pytest.TempPathFactory, prompts_file: Path) -> Callable[..., Path]:
    """``dump_of(model_dir, **ReferenceConfig fields) -> dump dir``, cached per arguments."""
    cache: dict[str, Path] = {}

    def build(model: Path, **kw: Any) -> Path:
        from adaptgate.reference.api import ReferenceConfig, build_reference

        key = json.dumps([str(model), sorted(kw.items())], default=str)
        if key not in cache:
            out = tmp_path_factory.mktemp("dump") / "ref"
            kw.setdefault("max_new_tokens", 8)
            kw.setdefault("prompts_file", prompts_file)
            build_reference(ReferenceConfig(model=str(model), out=out, **kw))
            cache[key] = out
        return cache[key]

    return build


def _edit_copy(src: Path, dest: Path, edit: Callable[[dict[str, torch.Tensor]], None]) -> Path:
    from safetensors.torch import load_file, save_file

    shutil.copytree(src, dest)
    tensors = load_file(dest / "model.safetensors")
    edit(tensors)
    save_file(tensors, dest / "model.safetensors", metadata={"format": "pt"})
    return dest


@pytest.fixture(scope="session")
def fp8_model(tiny_model: Callable[..., Path]) -> Path:
    return tiny_model(arch="qwen3", format="fp8_block", num_layers=LAYERS)


@pytest.fixture(scope="session")
def transposed_scales_model(fp8_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The FP8 checkpoint with one layer's o_proj block scales transposed (a converter bug)."""

    def edit(t: dict[str, torch.Tensor]) -> None:
        key = f"model.layers.{DEFECT_LAYER}.self_attn.o_proj.weight_scale_inv"
        assert t[key].shape[0] == t[key].shape[1] and not torch.equal(t[key], t[key].T)
        t[key] = t[key].T.contiguous()

    return _edit_copy(fp8_model, tmp_path_factory.mktemp("defect") / "transposed", edit)


@pytest.fixture(scope="session")
def perturbed_model(
    tiny_model: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The bf16 model with 10% noise on one layer's MLP down projection."""
    src = tiny_model(arch="qwen3", format="bf16", num_layers=LAYERS)

    def edit(t: dict[str, torch.Tensor]) -> None:
        key = f"model.layers.{DEFECT_LAYER}.mlp.down_proj.weight"
        gen = torch.Generator().manual_seed(0)
        noise = 1 + 0.1 * torch.randn(t[key].shape, generator=gen)
        t[key] = (t[key].float() * noise).to(torch.bfloat16)

    return _edit_copy(src, tmp_path_factory.mktemp("defect") / "perturbed", edit)


@pytest.fixture(scope="session")
def w8a8_ct_model(fp8_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``adaptgate convert --to w8a8-dynamic --format compressed-tensors`` of the FP8 model."""
    from adaptgate.convert.engine import run_conversion
    from adaptgate.convert.models import ConvertOptions, OutputFormat, Target

    out = tmp_path_factory.mktemp("w8a8") / "ct"
    target, layout = Target.W8A8_DYNAMIC, OutputFormat.COMPRESSED_TENSORS
    run_conversion(ConvertOptions(model=str(fp8_model), out=out, target=target, format=layout))
    return out


@pytest.fixture(scope="session")
def scrambled_w8a8_model(w8a8_ct_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The W8A8 conversion with one layer's per-channel scales scrambled: every row of each of
    its ``weight_scale`` tensors times a seeded factor between 1/4 and 4 (a converter that pairs
    scales with the wrong rows). A permutation alone moves the tiny model's logits too little
    (KL 0.012, under the quantized profile): its random rows' scales are all within 2x."""

    def edit(t: dict[str, torch.Tensor]) -> None:
        gen = torch.Generator().manual_seed(0)
        keys = [k for k in t if k.startswith(f"model.layers.{DEFECT_LAYER}.")]
        scales = [k for k in keys if k.endswith(".weight_scale")]
        assert len(scales) == 7  # q k v o gate up down
        for key in scales:
            factor = 4 ** (2 * torch.rand(t[key].shape, generator=gen) - 1)
            t[key] = (t[key].float() * factor).to(t[key].dtype)

    return _edit_copy(w8a8_ct_model, tmp_path_factory.mktemp("defect") / "scrambled", edit)


def completion_from_dump(dump: Path, body: dict[str, Any]) -> dict[str, Any]:
    """What vLLM's /v1/completions answers, computed from a reference dump's numbers."""
    from adaptgate.reference.dump import gen_key, open_dump, prompt_key

    reader = open_dump(dump)
    ids = list(body["prompt"])
    k = next(i for i, p in enumerate(reader.meta.prompts) if p.token_ids == ids)
    rec = reader.meta.prompts[k]
    top_k = int(body.get("logprobs") or 0)
    n = min(int(body["max_tokens"]), len(rec.generated_ids))
    logprobs = reader.tensor(gen_key(k, "logprobs"))
    top_ids = reader.tensor(gen_key(k, "topk_ids"))
    top_lps = reader.tensor(gen_key(k, "topk_logprobs"))
    tokens = [f"token_id:{t}" for t in rec.generated_ids[:n]]
    top = [
        {
            f"token_id:{int(i)}": float(v)
            for i, v in zip(top_ids[s, :top_k], top_lps[s, :top_k], strict=True)
        }
        for s in range(n)
    ]
    choice: dict[str, Any] = {
        "index": 0,
        "text": rec.generated_text,
        "finish_reason": "length",
        "logprobs": {
            "tokens": tokens,
            "token_logprobs": [float(logprobs[s]) for s in range(n)],
            "top_logprobs": top,
            "text_offset": list(range(n)),
        },
    }
    if body.get("prompt_logprobs"):
        logits = reader.tensor(prompt_key(k, "logits"))
        entries: list[Any] = [None]
        for t in range(1, len(ids)):
            lp = torch.log_softmax(logits[t - 1].double(), dim=-1)
            entries.append({str(ids[t]): {"logprob": float(lp[ids[t]]), "rank": 1}})
        choice["prompt_logprobs"] = entries
    return {"id": "cmpl-fake", "object": "text_completion", "choices": [choice], "usage": {}}


@pytest.fixture
def fake_server() -> Iterator[Callable[[Path], str]]:
    """``fake_server(dump) -> base URL`` of an OpenAI-compatible server answering from ``dump``."""
    servers: list[ThreadingHTTPServer] = []

    def start(dump: Path) -> str:
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, payload: Any, code: int = 200) -> None:
                data = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._send({"object": "list", "data": [{"id": "tiny", "object": "model"}]})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                self._send(completion_from_dump(dump, body))

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()
