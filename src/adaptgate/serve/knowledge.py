"""Loads the serving knowledge (env.yaml, recipes.yaml, kernels.yaml, operators.yaml,
doctor.yaml) and evaluates the small ``when`` condition language the data uses. A row's
sentences are data in both languages: ``reason`` (English) with ``reason_zh`` beside it, and
likewise ``cause``/``fix``/``title``/``detail``/``note``."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

from adaptgate.errors import InternalError, UsageError
from adaptgate.inspect.releases import parse_release, release_in
from adaptgate.messages import Said

# `when` keys: exact-match lists, booleans, and numeric bounds on the plan's context.
_LIST_KEYS = {"targets": "target", "families": "family"}
_BOOL_KEYS = {"moe", "int8", "mtp"}
_MIN_KEYS = {"min_ranks": "ranks", "min_tp": "tp", "min_nodes": "nodes"}
_MAX_KEYS = {"max_ranks": "ranks", "max_nodes": "nodes"}
# `releases: [min, max)` as major.minor strings (max null: open-ended), like support_matrix.yaml;
# a row with bounds never holds for a context that does not know its release.
_RANGE_KEYS = {"releases"}
WHEN_KEYS = frozenset(
    {"platform", "head_dims", *_LIST_KEYS, *_BOOL_KEYS, *_MIN_KEYS, *_MAX_KEYS, *_RANGE_KEYS}
)


@dataclass(frozen=True)
class PlanContext:
    """What a ``when`` can ask about the plan being built."""

    target: str
    family: str
    ranks: int = 1
    tp: int = 1
    nodes: int = 1
    moe: bool = False
    int8: bool = False
    mtp: bool = False
    release: tuple[int, int] | None = None
    head_dim: int = 0
    values: dict[str, Any] = field(default_factory=dict)

    @property
    def platform(self) -> str:
        return self.target.split("-", maxsplit=1)[0]


def when_holds(when: dict[str, Any] | None, ctx: PlanContext) -> bool:
    for key, want in (when or {}).items():
        if key == "platform":
            ok = ctx.platform == want
        elif key in _LIST_KEYS:
            ok = getattr(ctx, _LIST_KEYS[key]) in want
        elif key in _BOOL_KEYS:
            ok = bool(getattr(ctx, key)) == bool(want)
        elif key in _MIN_KEYS:
            ok = getattr(ctx, _MIN_KEYS[key]) >= int(want)
        elif key in _MAX_KEYS:
            ok = getattr(ctx, _MAX_KEYS[key]) <= int(want)
        elif key == "head_dims":
            ok = ctx.head_dim in want
        elif key == "releases":
            ok = ctx.release is not None and release_in(ctx.release, want)
        else:
            raise InternalError(f"unknown `when` key {key!r} in serving knowledge")
        if not ok:
            return False
    return True


def _load(name: str) -> dict[str, Any]:
    import yaml

    text = resources.files("adaptgate.serve").joinpath(name).read_text("utf-8")
    data: dict[str, Any] = yaml.safe_load(text)
    return data


def check_releases(name: str, bounds: Any) -> None:
    """``bounds`` is ``[min, max)``: two major.minor strings or nulls, min below max."""
    ok = isinstance(bounds, list) and len(bounds) == 2
    ok = ok and all(b is None or isinstance(b, str) for b in bounds)
    try:
        parsed = [parse_release(b) for b in bounds if b is not None] if ok else []
    except UsageError:
        ok = False
    if not ok or (len(parsed) == 2 and parsed[0] >= parsed[1]):
        raise InternalError(f"{name}: `releases` must be [min, max) as major.minor: {bounds!r}")


def is_ascend_row(row: dict[str, Any]) -> bool:
    """A row only vllm-ascend reads: it must say which releases it holds for."""
    when = row.get("when") or {}
    targets = when.get("targets") or []
    return (
        when.get("platform") == "ascend"
        or (bool(targets) and all(str(t).startswith("ascend") for t in targets))
        or row.get("engine") == "vllm-ascend"
    )


def check_release_keyed(name: str, row: dict[str, Any], source: str | None) -> None:
    """An Ascend row carries `releases` bounds, or a source that says they are not verified."""
    bounds = (row.get("when") or {}).get("releases", row.get("releases"))
    if bounds is not None:
        check_releases(name, bounds)
    elif is_ascend_row(row) and "not verified" not in (source or ""):
        raise InternalError(
            f"{name}: the Ascend row {row.get('name') or row.get('key') or row.get('id')!r} has "
            "no `releases` bounds and its source does not say it is not verified"
        )


def _check_rows(name: str, rows: list[dict[str, Any]], sources: dict[str, str]) -> None:
    for row in rows:
        unknown = set(row.get("when") or {}) - WHEN_KEYS
        if unknown:
            raise InternalError(f"{name}: unknown `when` keys {sorted(unknown)} in {row}")
        if row.get("source") and row["source"] not in sources:
            raise InternalError(f"{name}: source {row['source']!r} is not declared")
        if not row.get("reason"):
            raise InternalError(f"{name}: a row without a reason: {row}")
        check_release_keyed(name, row, source_text({"sources": sources}, row.get("source")))


@lru_cache(maxsize=1)
def env_knowledge() -> dict[str, Any]:
    data = _load("env.yaml")
    _check_rows("env.yaml", data["variables"], data["sources"])
    return data


@lru_cache(maxsize=1)
def recipes() -> dict[str, Any]:
    data = _load("recipes.yaml")
    _check_rows("recipes.yaml", data["additional_config"], data["sources"])
    return data


@lru_cache(maxsize=1)
def kernel_knowledge() -> dict[str, Any]:
    data = _load("kernels.yaml")
    for section in ("release_fusions", "kernels", "source_edits"):
        _check_rows("kernels.yaml", data[section], data["sources"])
    for kernel in data["kernels"]:
        _check_rows("kernels.yaml", kernel["install"], data["sources"])
        if kernel["unless_fused"] not in {f["name"] for f in data["release_fusions"]}:
            raise InternalError(f"kernels.yaml: {kernel['name']} names an unknown fusion")
    return data


@lru_cache(maxsize=1)
def operator_knowledge() -> dict[str, Any]:
    return _load("operators.yaml")


@lru_cache(maxsize=1)
def _seed_disagreements() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = _load("seed_disagreements.yaml")["disagreements"]
    return rows


SEED_SENTENCES = ("position", "reason", "source")  # each with its <key>_zh


def seed_disagreements(model: str, target: str) -> list[dict[str, Any]]:
    """The recorded disagreements with the seed reports that concern ``model`` on ``target``;
    the position, reason and source as sentences in both languages."""
    name, platform = model.lower(), target.split("-", maxsplit=1)[0]
    out = []
    for row in _seed_disagreements():
        if not any(m in name for m in row["when"].get("models", [name])):
            continue
        if platform not in row["when"].get("platforms", [platform]):
            continue
        flat = {k: " ".join(str(v).split()) for k, v in row.items() if k != "when"}
        out.append(
            {k: v for k, v in flat.items() if not k.endswith("_zh")}
            | {k: row_said(flat, k) for k in SEED_SENTENCES}
        )
    return out


def row_said(row: dict[str, Any], key: str = "reason") -> Said:
    """A data row's sentence ``key`` with its Chinese (``<key>_zh``) beside it."""
    return Said(text=str(row[key]), zh=row.get(f"{key}_zh"))


def source_text(data: dict[str, Any], key: str | None) -> str | None:
    return data["sources"].get(key) if key else None
