"""The KV cache measured on an engine: servers answering from a tiny model (exactly, or with a
planted perturbation of their logits), scored against the same model as the reference."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from kv_testlib import tiny_qwen2

from adaptgate.errors import EngineUnavailable, UnknownKind, UsageError
from adaptgate.kvcache.engine import (
    AUTO,
    Texts,
    measure_on_engine,
    parse_engine_urls,
    url_launcher,
)
from adaptgate.kvcache.gate import contradicted
from adaptgate.kvcache.models import Endpoint
from adaptgate.kvcache.verdict import load_kv_thresholds

MODEL = tiny_qwen2(seed=3)


def logprobs(ids: list[int], temperature: float) -> torch.Tensor:
    """[len(ids), vocab] float64 log-softmax of the tiny model's logits / temperature."""
    with torch.inference_mode():
        logits = MODEL(input_ids=torch.tensor([ids]), use_cache=False).logits[0]
    return torch.log_softmax(logits.to(torch.float64) / temperature, dim=-1)


def greedy(prompt: list[int], n: int, temperature: float = 1.0) -> list[int]:
    ids = list(prompt)
    for _ in range(n):
        ids.append(int(logprobs(ids, temperature)[-1].argmax()))
    return ids[len(prompt) :]


def _top(row: torch.Tensor, k: int, extra: int | None = None) -> dict[str, dict[str, float]]:
    values, idx = row.topk(k)
    out = {str(int(i)): {"logprob": float(v)} for v, i in zip(values, idx, strict=True)}
    if extra is not None:
        out[str(extra)] = {"logprob": float(row[extra])}
    return out


class FakeVllm(BaseHTTPRequestHandler):
    """/v1/models and /v1/completions (token-id prompts, prompt_logprobs, ignore_eos)."""

    temperature = 1.0

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._send({"data": [{"id": "tiny"}]})

    def do_POST(self) -> None:
        req = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        prompt, k, n = req["prompt"], int(req["logprobs"]), int(req["max_tokens"])
        out = greedy(prompt, n, self.temperature)
        rows = logprobs(prompt + out, self.temperature)
        choice: dict[str, Any] = {
            "text": "",
            "logprobs": {
                "tokens": [f"token_id:{t}" for t in out],
                "token_logprobs": [float(rows[len(prompt) - 1 + i][t]) for i, t in enumerate(out)],
                "top_logprobs": [
                    {
                        f"token_id:{i}": v["logprob"]
                        for i, v in _top(rows[len(prompt) - 1 + s], k).items()
                    }
                    for s in range(n)
                ],
            },
        }
        if req.get("prompt_logprobs"):
            pk = int(req["prompt_logprobs"])
            choice["prompt_logprobs"] = [None] + [
                _top(rows[t - 1], pk, extra=prompt[t]) for t in range(1, len(prompt))
            ]
        self._send({"choices": [choice]})


@contextmanager
def fake_server(temperature: float) -> Iterator[str]:
    handler = type("Handler", (FakeVllm,), {"temperature": temperature})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


PROMPTS = [[5, 17, 33, 2, 90], [7, 7, 64, 101, 3, 12, 44]]
TEXTS = Texts(PROMPTS, [greedy(p, 12) for p in PROMPTS])
SESSION = SimpleNamespace(lm=SimpleNamespace(model=MODEL))
TH = load_kv_thresholds()


def launcher(temperatures: dict[str, float]):
    @contextmanager
    def launch(name: str) -> Iterator[Endpoint]:
        if name not in temperatures:
            raise EngineUnavailable(f"{name} does not start")
        with fake_server(temperatures[name]) as url:
            yield Endpoint(url=url, model="tiny", managed=True)

    return launch


def run(temperatures: dict[str, float], formats: list[str]):
    return measure_on_engine(
        launcher(temperatures),
        "fake",
        formats,
        TEXTS,
        SESSION,
        TH,  # type: ignore[arg-type]
    )


def test_an_exact_engine_scores_zero_and_a_perturbed_cache_is_judged_against_auto() -> None:
    done = run({AUTO: 1.0, "fp8_e4m3": 1.0, "fp8_e5m2": 0.3}, ["fp8_e4m3", "fp8_e5m2"])
    assert done.skipped is None and done.auto is not None
    positions = sum(len(c) for c in TEXTS.continuations)
    assert done.auto.positions == positions
    assert done.auto.kl_mean < 1e-9 and done.auto.top1_agreement == 1.0
    assert done.auto.exact_match_rate == 1.0 and done.auto.logprob_abs_diff_mean < 1e-9
    same = done.format("fp8_e4m3")
    assert (
        same is not None and same.verdict == "SAFE" and same.kl_mean == pytest.approx(0, abs=1e-9)
    )
    assert same.top1_agreement == 1.0 and same.exact_match_rate == 1.0
    hot = done.format("fp8_e5m2")
    assert hot is not None and hot.arm is not None and hot.verdict in ("RISKY", "UNSAFE")
    # the top-k + tail KL is a lower bound of the full KL(engine || reference), per position
    full = []
    for prompt, cont in zip(TEXTS.prompts, TEXTS.continuations, strict=True):
        ref = logprobs(prompt + cont, 1.0)[len(prompt) - 1 : -1]
        eng = logprobs(prompt + cont, 0.3)[len(prompt) - 1 : -1]
        full += (eng.exp() * (eng - ref)).sum(-1).tolist()
    assert 0.005 < hot.arm.kl_mean <= sum(full) / len(full) + 1e-12
    assert hot.kl_mean == pytest.approx(hot.arm.kl_mean - done.auto.kl_mean)
    assert "kl_mean" in hot.reason.text and f"{hot.arm.kl_mean:.3g}" in hot.reason.text


def test_a_cache_that_does_not_start_is_not_measured_and_no_baseline_measures_nothing() -> None:
    done = run({AUTO: 1.0}, ["fp8_e4m3"])
    only = done.format("fp8_e4m3")
    assert only is not None and only.verdict is None and "does not start" in (only.error or "")
    nothing = run({"fp8_e4m3": 1.0}, ["fp8_e4m3"])
    assert nothing.auto is None and nothing.formats == []
    assert nothing.skipped is not None and "no baseline server (auto)" in nothing.skipped.text


def test_given_urls_are_measured_and_a_missing_one_says_which() -> None:
    with fake_server(1.0) as a, fake_server(1.0) as b:
        launch = url_launcher(parse_engine_urls([f"auto={a}", f"fp8={b}"]))
        done = measure_on_engine(launch, "urls", ["fp8_e4m3", "fp8_e5m2"], TEXTS, SESSION, TH)  # type: ignore[arg-type]
    assert done.format("fp8_e4m3").verdict == "SAFE"  # type: ignore[union-attr]
    missing = done.format("fp8_e5m2")
    assert missing is not None and "--engine-url fp8_e5m2=URL" in (missing.error or "")


@pytest.mark.parametrize(
    ("items", "message"),
    [
        (["fp8_e4m3=http://x"], "needs the baseline server"),
        (["auto"], "is not NAME=URL"),
        (["auto=http://x", "fp9=http://y"], "fp9"),
    ],
)
def test_engine_url_errors(items: list[str], message: str) -> None:
    with pytest.raises((UsageError, UnknownKind), match=message):  # both exit 2
        parse_engine_urls(items)


def test_a_simulated_safe_the_engine_contradicts_is_named_with_both_numbers() -> None:
    def fmt(verdict: str, engine: str | None) -> SimpleNamespace:
        on = None if engine is None else SimpleNamespace(verdict=engine, kl_mean=0.0185, reason="r")
        return SimpleNamespace(
            format=f"f-{verdict}-{engine}", verdict=verdict, on_engine=on,
            logits=SimpleNamespace(kl_mean=0.0012),
        )  # fmt: skip

    result = SimpleNamespace(
        formats=[
            fmt("SAFE", "RISKY"),
            fmt("SAFE", "SAFE"),
            fmt("RISKY", "UNSAFE"),
            fmt("SAFE", None),
        ]
    )
    found = [s.text for s in contradicted(result)]
    assert len(found) == 1 and "f-SAFE-RISKY" in found[0]
    assert "0.0012" in found[0] and "0.0185" in found[0]


def test_a_server_that_fails_its_requests_leaves_that_cache_not_measured() -> None:
    @contextmanager
    def launch(name: str) -> Iterator[Endpoint]:
        if name == AUTO:
            with fake_server(1.0) as url:
                yield Endpoint(url=url, model="tiny", managed=True)
        else:  # nothing listens there: every request fails
            yield Endpoint(url="http://127.0.0.1:9", model="tiny", managed=True)

    done = measure_on_engine(launch, "fake", ["fp8_e4m3"], TEXTS, SESSION, TH)  # type: ignore[arg-type]
    only = done.format("fp8_e4m3")
    assert done.auto is not None and only is not None and only.verdict is None
    assert "127.0.0.1:9" in (only.error or "")
