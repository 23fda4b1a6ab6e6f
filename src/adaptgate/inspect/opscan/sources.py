"""Where the scanned trees are and which release each is: ``--vllm-src`` / ``--vllm-ascend-src``
(a checkout or the package directory), else the installed package found without importing it.
The release comes from the build's ``_version.py``, the installed distribution's metadata, or the
checkout's git tag, in that order."""

from __future__ import annotations

import ast
import importlib.util
import subprocess
from pathlib import Path

from pydantic import BaseModel

from adaptgate.errors import UsageError
from adaptgate.inspect.opscan.pysource import parse_file


class Tree(BaseModel):
    """A source tree: ``root`` holds the package directory (``root/vllm``)."""

    package: str
    root: Path
    version: str | None = None
    version_from: str | None = None

    @property
    def package_dir(self) -> Path:
        return self.root / self.package


def locate(package: str, src: Path | None, option: str) -> Tree | None:
    """The tree of ``package`` (vllm, vllm_ascend): ``src`` when given (its absence is an
    error), else the installed one, else None."""
    if src is not None:
        root = _root_of(package, src.expanduser())
        if root is None:
            raise UsageError(
                f"{option} {src}: no {package}/__init__.py there",
                fix=f"point {option} at a {package} checkout (the directory holding {package}/)",
            )
    else:
        spec = importlib.util.find_spec(package)  # finds, does not import
        if spec is None or not spec.submodule_search_locations:
            return None
        root = Path(next(iter(spec.submodule_search_locations))).parent
    version, where = _version(package, root)
    return Tree(package=package, root=root, version=version, version_from=where)


def _root_of(package: str, src: Path) -> Path | None:
    if (src / package / "__init__.py").is_file():
        return src
    if src.name == package and (src / "__init__.py").is_file():
        return src.parent
    return None


def _version(package: str, root: Path) -> tuple[str | None, str | None]:
    version_file = root / package / "_version.py"
    if version_file.is_file() and (found := _version_constant(version_file)):
        return found, f"{package}/_version.py"
    dist = package.replace("_", "-")
    for meta in sorted(root.glob(f"{package}*.dist-info/METADATA")):
        for line in meta.read_text(errors="replace").splitlines():
            if line.startswith("Version:"):
                return line.split(":", 1)[1].strip(), f"{meta.parent.name} ({dist})"
    return _git_tag(root)


def _version_constant(path: Path) -> str | None:
    tree = parse_file(path)
    for node in tree.body if tree else []:
        names = {t.id for t in getattr(node, "targets", []) if isinstance(t, ast.Name)}
        value = getattr(node, "value", None)
        if names & {"__version__", "version"} and isinstance(value, ast.Constant):
            return str(value.value)
    return None


def _git_tag(root: Path) -> tuple[str | None, str | None]:
    if not (root / ".git").exists():
        return None, None
    try:
        done = subprocess.run(
            ["git", "-C", str(root), "describe", "--tags"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None, None
    tag = done.stdout.strip()
    return (
        (tag.removeprefix("v"), "git describe --tags")
        if done.returncode == 0 and tag
        else (None, None)
    )
