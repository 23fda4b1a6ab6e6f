"""Token counting for prompt lengths: the served model's own tokenizer through the server's
``/tokenize`` and ``/detokenize`` (vLLM), or whitespace words when the server has none.

Random prompts drift from their nominal length when re-tokenized; :func:`fit_length` samples
token ids, decodes them and re-encodes until the count is exact (or gives up, and says so).
"""

from __future__ import annotations

import hashlib
import json
import random
from typing import Any, Protocol

_WORD_TEXT = (
    "time year people way day man thing woman life child world school state family student "
    "group country problem hand part place case week company system program question work "
    "government number night point home water room mother area money story fact month lot "
    "right study book eye job word business issue side kind head house service friend father "
    "power hour game line end member law car city community name president team minute idea "
    "kid body information back parent face others level office door health person art war "
    "history party result change morning reason research girl guy moment air teacher force "
    "education foot boy age policy music market sense nation plan college interest death "
    "experience effect use class control care field development role effort rate heart drug "
    "show leader light voice wife police mind price report decision son view relationship "
    "town "
)
WORDS = tuple(_WORD_TEXT.split())


class Tokenizer(Protocol):
    name: str
    exact: bool

    async def encode(self, text: str) -> list[int]: ...

    async def decode(self, ids: list[int]) -> str: ...


class WordTokenizer:
    """One token per whitespace-separated word: exact against the calibration server only."""

    name = "words"
    exact = False

    async def encode(self, text: str) -> list[int]:
        return [WORDS.index(w) if w in WORDS else 0 for w in text.split()]

    async def decode(self, ids: list[int]) -> str:
        return " ".join(WORDS[i % len(WORDS)] for i in ids)


class ServerTokenizer:
    """The served model's tokenizer via vLLM's ``/tokenize`` and ``/detokenize``."""

    exact = True

    def __init__(self, session: Any, base_url: str, model: str, headers: dict[str, str]) -> None:
        self.session = session
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.headers = headers
        self.name = f"server:{model}"

    async def _post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        async with self.session.post(
            self.base_url + path, json=payload, headers=self.headers
        ) as resp:
            resp.raise_for_status()
            data: dict[str, Any] = await resp.json()
            return data

    async def encode(self, text: str) -> list[int]:
        data = await self._post(
            "/tokenize", {"model": self.model, "prompt": text, "add_special_tokens": False}
        )
        return [int(t) for t in data["tokens"]]

    async def decode(self, ids: list[int]) -> str:
        data = await self._post("/detokenize", {"model": self.model, "tokens": ids})
        return str(data["prompt"])

    async def fingerprint(self) -> str:
        """sha256 of the token ids of a fixed probe text: same hash, same tokenization."""
        probe = " ".join(WORDS) + " 0123456789 ,.;:!? 中文 émigré"
        ids = await self.encode(probe)
        return hashlib.sha256(json.dumps(ids).encode()).hexdigest()


async def fit_length(tok: Tokenizer, pool: list[int], n: int, rng: random.Random) -> str:
    """Text that ``tok`` encodes to exactly ``n`` tokens (best effort after a few rounds): sample
    ``n`` ids, decode, re-encode, and grow or cut the id list by the difference."""
    ids = [rng.choice(pool) for _ in range(n)]
    text = await tok.decode(ids)
    for _ in range(8):
        got = len(await tok.encode(text))
        if got == n:
            break
        if got > n:
            ids = ids[: max(1, len(ids) - (got - n))]
        else:
            ids = ids + [rng.choice(pool) for _ in range(n - got)]
        text = await tok.decode(ids)
    return text


async def token_pool(tok: Tokenizer) -> list[int]:
    ids = await tok.encode(" ".join(WORDS))
    return sorted(set(ids)) or [0]
