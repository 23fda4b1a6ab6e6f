"""Scenario files: loaded, and merged with the command line into a
:class:`adaptgate.bench.models.BenchConfig`.

Precedence: CLI options > scenario file > defaults. The API key is never a setting: only the name
of the environment variable that holds it.
"""

from __future__ import annotations

from pathlib import Path

from adaptgate.errors import UsageError


def load_scenario(path: Path) -> dict[str, object]:
    """A scenario YAML as a dict (validated when merged with the CLI options)."""
    import yaml

    if not path.is_file():
        raise UsageError(f"scenario file {path} does not exist", fix="pass an existing YAML file")
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise UsageError(f"{path} is not a YAML mapping", fix="see `adaptgate bench --help`")
    return data


def merge(base: dict[str, object], overrides: dict[str, dict[str, object]]) -> dict[str, object]:
    """Section-wise update of a scenario dict with the options given on the command line."""
    merged = dict(base)
    for section, values in overrides.items():
        current = merged.get(section) or {}
        if not isinstance(current, dict):
            raise UsageError(f"scenario section {section!r} must be a mapping")
        merged[section] = {**current, **{k: v for k, v in values.items() if v is not None}}
    return merged
