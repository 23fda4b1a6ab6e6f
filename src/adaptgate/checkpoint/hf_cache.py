"""Resolving a model spec: a local directory, or a Hugging Face id already in the local cache.

Never touches the network. The cache layout is huggingface_hub's:
``<cache>/models--<org>--<name>/{refs/<ref>, snapshots/<commit>/, blobs/}``; the cache directory
follows huggingface_hub's environment variables, read at call time.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from adaptgate.errors import CheckpointNotFound

# huggingface_hub's REPO_ID_REGEX (utils/_validators.py), plus an optional "@revision".
_REPO_ID = re.compile(r"(\b[\w\-.]{1,96}\b/)?\b[\w\-.]{1,96}\b", re.ASCII)


def hf_hub_cache_dir() -> Path:
    """HF_HUB_CACHE, else HUGGINGFACE_HUB_CACHE, else $HF_HOME/hub (HF_HOME defaulting to
    $XDG_CACHE_HOME/huggingface or ~/.cache/huggingface), as huggingface_hub.constants does."""
    env = os.environ

    def expand(value: str) -> Path:
        return Path(os.path.expandvars(value)).expanduser()

    xdg = expand(env["XDG_CACHE_HOME"]) if env.get("XDG_CACHE_HOME") else Path.home() / ".cache"
    home = expand(env["HF_HOME"]) if env.get("HF_HOME") else xdg / "huggingface"
    cache = env.get("HF_HUB_CACHE") or env.get("HUGGINGFACE_HUB_CACHE")
    return expand(cache) if cache else home / "hub"


def _split_spec(spec: str) -> tuple[str, str | None] | None:
    """(repo_id, revision) when ``spec`` is shaped like a Hub id, else None."""
    repo_id, _, revision = spec.partition("@")
    if (
        not _REPO_ID.fullmatch(repo_id)
        or "--" in repo_id
        or ".." in repo_id
        or repo_id.endswith(".git")
    ):
        return None
    if revision and (".." in revision or revision.startswith("/")):
        return None
    return repo_id, revision or None


def find_in_hf_cache(repo_id: str, revision: str | None = None) -> Path | None:
    """The snapshot directory of ``repo_id`` in the local cache, or None."""
    repo_dir = hf_hub_cache_dir() / ("models--" + repo_id.replace("/", "--"))
    snapshots = repo_dir / "snapshots"
    if not snapshots.is_dir():
        return None
    ref = repo_dir / "refs" / (revision or "main")
    if ref.is_file():
        commit = ref.read_text(encoding="utf-8", errors="replace").strip()
        if commit and (snapshots / commit).is_dir():
            return snapshots / commit
    if revision is not None:
        candidate = snapshots / revision  # a commit hash given directly
        return candidate if candidate.is_dir() else None
    present = [p for p in snapshots.iterdir() if p.is_dir()]
    if len(present) == 1:
        return present[0]
    if present:
        names = ", ".join(sorted(p.name[:12] for p in present))
        raise CheckpointNotFound(
            f"{repo_id} has several snapshots in the local Hugging Face cache ({names}) and no "
            "refs/main",
            fix=f"name one: {repo_id}@<commit>, or pass the snapshot directory",
        )
    return None


def resolve_model_path(spec: str | Path) -> Path:
    """A model directory: ``spec`` itself when it exists, else its local HF cache snapshot."""
    raw = str(spec)
    if not raw.strip():
        raise CheckpointNotFound("empty model path", fix="pass a model directory or a Hub id")
    path = Path(raw).expanduser()
    if path.exists():
        if not path.is_dir():
            raise CheckpointNotFound(
                f"{path} is a file, not a model directory",
                fix="pass the directory that holds config.json and the weights",
            )
        return path.absolute()
    parsed = None if isinstance(spec, Path) else _split_spec(raw)
    if parsed is None:
        raise CheckpointNotFound(
            f"model directory {path} does not exist", fix="check the path (or pass a Hub id)"
        )
    repo_id, revision = parsed
    found = find_in_hf_cache(repo_id, revision)
    if found is not None:
        return found
    where = f"@{revision}" if revision else ""
    raise CheckpointNotFound(
        f"{raw!r} is not a local directory and {repo_id}{where} is not in the local Hugging Face "
        f"cache ({hf_hub_cache_dir()}); adaptgate never downloads",
        fix=f"download it first (hf download {repo_id}) or pass a local directory",
    )
