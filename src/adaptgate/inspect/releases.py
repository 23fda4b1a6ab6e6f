"""Engine releases as data: which engine a target runs, the releases adaptgate knows (with dates
and sources, ``support_matrix.yaml`` ``engines``), and the release a plan assumes when none is
given: the installed engine's version when its distribution is installed here (read from the
package metadata, without importing the engine), else the newest known release."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from adaptgate.errors import UsageError
from adaptgate.results import package_version

_VERSION = re.compile(r"v?(\d+)\.(\d+)(?:\.(\d+))?(?:\.?(rc|a|b)(\d+))?")
# A final release sorts after its release candidates.
_PRE_ORDER = {"a": 0, "b": 1, "rc": 2, None: 3}


class KnownRelease(BaseModel):
    model_config = ConfigDict(frozen=True)

    version: str
    date: str | None = None
    source: str


class ReleaseChoice(BaseModel):
    """The release a result was planned for, and why that one."""

    engine: str
    release: str
    chosen_by: Literal["--release", "installed", "newest-known"]
    why: str
    known: bool
    source: str | None = None


def _matrix() -> dict[str, Any]:
    from adaptgate.inspect.support import load_matrix

    return load_matrix()


def parse_release(release: str) -> tuple[int, int]:
    """major.minor of a release string (rows are keyed by major.minor ranges)."""
    m = _VERSION.match(release.strip())
    if not m:
        raise UsageError(f"cannot read release {release!r}", fix="give it as 0.18.0 or v0.18.0rc1")
    return int(m[1]), int(m[2])


def version_order(release: str) -> tuple[int, int, int, int, int]:
    """A sort key: 0.18.0rc1 < 0.18.0 < 0.23.0rc1 < 0.23.0 < 0.26.0rc1."""
    m = _VERSION.match(release.strip())
    if not m:
        raise UsageError(f"cannot read release {release!r}", fix="give it as 0.18.0 or v0.18.0rc1")
    return (int(m[1]), int(m[2]), int(m[3] or 0), _PRE_ORDER[m[4]], int(m[5] or 0))


def release_in(release: tuple[int, int], bounds: list[str | None]) -> bool:
    """``release`` within ``[low, high)`` as major.minor; a None bound is open-ended."""
    low, high = bounds
    if low is not None and release < parse_release(low):
        return False
    return high is None or release < parse_release(high)


def engine_for(target: str) -> str:
    for name, engine in _matrix()["engines"].items():
        if target in engine["targets"]:
            return str(name)
    raise UsageError(f"unknown target {target!r}", fix="use one of: " + ", ".join(_all_targets()))


def _all_targets() -> list[str]:
    return [t for e in _matrix()["engines"].values() for t in e["targets"]]


def known_releases(engine: str) -> list[KnownRelease]:
    """The engine's known releases, oldest first."""
    rows = [KnownRelease.model_validate(r) for r in _matrix()["engines"][engine]["releases"]]
    return sorted(rows, key=lambda r: version_order(r.version))


def installed_version(engine: str) -> tuple[str, str] | None:
    """(distribution, version) of the engine installed in this environment (package metadata,
    without importing it), or None."""
    for dist in _matrix()["engines"][engine]["distributions"]:
        if version := package_version(dist):
            return dist, version
    return None


def _normalise(release: str) -> str:
    return release.strip().removeprefix("v").split("+", maxsplit=1)[0]


def resolve_release(target: str, asked: str | None) -> ReleaseChoice:
    """The release to plan ``target`` for: ``asked`` (it must be a known release), else the
    installed engine's version, else the newest known release."""
    engine = engine_for(target)
    known = known_releases(engine)
    by_version = {r.version: r for r in known}
    sources = _matrix()["sources"]
    if asked is not None:
        release = _normalise(asked)
        version_order(release)  # a release that cannot be read is a usage error of its own
        row = by_version.get(release)
        if row is None:
            raise UsageError(
                f"unknown {engine} release {asked!r}",
                fix=f"use one of: {', '.join(r.version for r in known)}",
            )
        return ReleaseChoice(
            engine=engine,
            release=release,
            chosen_by="--release",
            why=f"--release {release}",
            known=True,
            source=sources[row.source],
        )
    if installed := installed_version(engine):
        dist, version = installed
        release = _normalise(version)
        row = by_version.get(release)
        return ReleaseChoice(
            engine=engine,
            release=release,
            chosen_by="installed",
            why=f"the installed {dist} {version}; no --release given"
            + ("" if row else "; not a release adaptgate knows, rows are matched by major.minor"),
            known=row is not None,
            source=sources[row.source] if row else None,
        )
    newest = known[-1]
    return ReleaseChoice(
        engine=engine,
        release=newest.version,
        chosen_by="newest-known",
        why=f"no --release given and no {engine} installed here: the newest known release"
        + (f" ({newest.date})" if newest.date else ""),
        known=True,
        source=sources[newest.source],
    )
