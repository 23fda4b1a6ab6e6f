"""``diagnose(log_text) -> Diagnosis``: failure signatures of vLLM / vllm-ascend logs mapped to
cause and fix. The knowledge is data (doctor.yaml); this module only matches it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from adaptgate.errors import InternalError, LogNotFound
from adaptgate.inspect.releases import parse_release, release_in
from adaptgate.messages import Said, said
from adaptgate.results import Result
from adaptgate.serve.knowledge import check_release_keyed, row_said

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_EXCEPTION = re.compile(r"\b[\w.]*(Error|Exception): \S")
_LEVEL = re.compile(r"\b(INFO|WARNING|DEBUG)\b")
MAX_EVIDENCE = 300
KV_BLOCK = 128


class Finding(BaseModel):
    id: str
    title: Said
    cause: Said
    fix: Said
    line: int = Field(description="1-based line of the first hit")
    hits: int = Field(description="lines that matched")
    evidence: list[str]
    source: str | None = None


class Diagnosis(Result):
    kind: str = "doctor"
    log: str | None = None
    lines: int
    findings: list[Finding]
    first_error: str | None = Field(None, description="the first error line, as a pointer")
    verdict: Literal["diagnosed", "unrecognized", "clean"]

    @property
    def top(self) -> Finding | None:
        return self.findings[0] if self.findings else None

    def summary(self) -> str:
        if self.top is None:
            return "no known failure signature" + (
                f"; first error: {self.first_error}" if self.first_error else ""
            )
        return f"{self.top.title}: {self.top.cause} -- fix: {self.top.fix}"


@dataclass(frozen=True)
class Signature:
    """A doctor.yaml entry; ``title``, ``cause`` and ``fix`` are templates in both languages
    (``text`` English, ``zh`` Chinese)."""

    id: str
    title: Said
    patterns: tuple[re.Pattern[str], ...]
    context: re.Pattern[str] | None
    window: int
    cause: Said
    fix: Said
    source: str | None
    supersedes: tuple[str, ...]
    generic: bool
    releases: tuple[str | None, str | None] | None = None  # vllm-ascend [min, max) it was read at


@lru_cache(maxsize=1)
def signatures() -> tuple[Signature, ...]:
    import yaml

    text = resources.files("adaptgate.serve").joinpath("doctor.yaml").read_text("utf-8")
    rows: list[dict[str, Any]] = yaml.safe_load(text)["signatures"]
    out = []
    ids = {r["id"] for r in rows}
    for row in rows:
        missing = {"id", "title", "match", "cause", "fix"} - set(row)
        unknown = set(row.get("supersedes", [])) - ids
        if missing or unknown:
            raise InternalError(f"doctor.yaml entry {row.get('id')}: {missing or unknown}")
        check_release_keyed("doctor.yaml", row, row.get("source"))
        out.append(
            Signature(
                id=row["id"],
                title=row_said(row, "title"),
                patterns=tuple(re.compile(p, re.IGNORECASE) for p in row["match"]),
                context=re.compile(row["context"], re.IGNORECASE) if row.get("context") else None,
                window=int(row.get("window", 30)),
                cause=row_said(row, "cause"),
                fix=row_said(row, "fix"),
                source=row.get("source"),
                supersedes=tuple(row.get("supersedes", [])),
                generic=bool(row.get("generic")),
                releases=tuple(row["releases"]) if row.get("releases") else None,
            )
        )
    return tuple(out)


class _Fill(dict[str, str]):
    """format_map values: named groups, plan hints, then neutral defaults."""

    def __missing__(self, key: str) -> str:
        return {"max_num_batched_tokens": "--max-num-batched-tokens"}.get(key, "")


def _values(match: re.Match[str], hints: dict[str, Any]) -> _Fill:
    values = _Fill({k: str(v) for k, v in hints.items() if v is not None})
    values.update({k: v for k, v in match.groupdict().items() if v is not None})
    if "estimated" in values:
        estimated = int(values["estimated"])
        values["estimated_floor"] = str(max(KV_BLOCK, estimated // KV_BLOCK * KV_BLOCK))
    return values


def first_error_line(lines: list[str]) -> str | None:
    """The root-cause pointer: the first exception line (``XyzError: ...``) outside INFO and
    WARNING records, else the first ERROR record."""
    exc = next((x for x in lines if _EXCEPTION.search(x) and not _LEVEL.search(x)), None)
    if exc is None:
        exc = next((x for x in lines if " ERROR " in x), None)
    return _clean(exc) if exc else None


def _clean(line: str) -> str:
    line = _ANSI.sub("", line).rstrip()
    return line if len(line) <= MAX_EVIDENCE else line[: MAX_EVIDENCE - 3] + "..."


def _filled(template: Said, values: _Fill) -> Said:
    def fill(text: str) -> str:
        return " ".join(text.format_map(values).split())

    return Said(text=fill(template.text), zh=fill(template.zh) if template.zh else None)


def _cause(sig: Signature, values: _Fill, ascend_release: str | None) -> Said:
    """The cause, with a note when the vllm-ascend release is known and outside the entry's
    bounds."""
    cause = _filled(sig.cause, values)
    if sig.releases is None or ascend_release is None:
        return cause
    if release_in(parse_release(ascend_release), list(sig.releases)):
        return cause
    low, high = sig.releases
    params: dict[str, Any] = {"cause": cause, "low": low or "any", "release": ascend_release}
    if high is None:
        return said("doctor.unverified", **params)
    return said("doctor.unverified_before", high=high, **params)


def diagnose(
    text: str,
    *,
    hints: dict[str, Any] | None = None,
    log: str | None = None,
    ascend_release: str | None = None,
) -> Diagnosis:
    """Every signature that matches, most specific first; generic ones a specific hit
    supersedes are dropped. ``ascend_release``: the vllm-ascend release the server ran, when
    known; an entry not verified for it says so."""
    lines = text.splitlines()
    found: dict[str, tuple[Signature, int, re.Match[str], int]] = {}
    for sig in signatures():
        for no, line in enumerate(lines):
            match = next((m for p in sig.patterns if (m := p.search(line))), None)
            if match is None:
                continue
            if sig.context is not None:
                window = lines[max(0, no - sig.window) : no + 1]
                if not any(sig.context.search(w) for w in window):
                    continue
            if sig.id in found:
                first = found[sig.id]
                found[sig.id] = (first[0], first[1], first[2], first[3] + 1)
            else:
                found[sig.id] = (sig, no, match, 1)
    hidden = {s for sig, *_ in found.values() for s in sig.supersedes}
    if any(not sig.generic for sig, *_ in found.values()):
        hidden |= {sig.id for sig, *_ in found.values() if sig.generic}
    first_error = first_error_line(lines)
    findings = []
    for sig, no, match, hits in found.values():
        if sig.id in hidden:
            continue
        values = _values(match, hints or {})
        evidence = [f"{no + 1}: {_clean(lines[no])}"]
        if first_error and first_error not in evidence[0]:
            evidence.append(f"first error: {first_error}")
        findings.append(
            Finding(
                id=sig.id,
                title=sig.title,
                cause=_cause(sig, values, ascend_release),
                fix=_filled(sig.fix, values),
                line=no + 1,
                hits=hits,
                evidence=evidence,
                source=sig.source,
            )
        )
    verdict: Literal["diagnosed", "unrecognized", "clean"] = "diagnosed"
    if not findings:
        verdict = "unrecognized" if first_error else "clean"
    return Diagnosis(
        log=log, lines=len(lines), findings=findings, first_error=first_error, verdict=verdict
    )


def diagnose_file(path: Path, *, hints: dict[str, Any] | None = None) -> Diagnosis:
    if not path.is_file():
        raise LogNotFound(f"no log file {path}", fix="pass the server log (serve writes vllm.log)")
    text = path.read_text(encoding="utf-8", errors="replace")
    return diagnose(text, hints=hints, log=str(path))


def tail(text: str, lines: int = 30) -> str:
    """The last lines of a log, ANSI-free: the excerpt errors quote."""
    return "\n".join(_clean(x) for x in text.splitlines()[-lines:])
