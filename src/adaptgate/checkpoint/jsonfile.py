"""Loading the JSON files of a model directory with one-line errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from adaptgate.errors import ConfigError


def json_type_name(value: Any) -> str:
    """The JSON name of a parsed value's type ("array", "string", "null", ...)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    names: dict[type, str] = {list: "array", str: "string", dict: "object"}
    return names.get(type(value), type(value).__name__)


def load_json_file(path: Path, what: str) -> dict[str, Any]:
    """Parses ``path`` as a JSON object; ``what`` names the file in errors ("config.json")."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"{what} not found at {path}", fix=f"add {what} to the directory"
        ) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{what} is not UTF-8 text (byte {exc.start}) at {path}",
            fix=f"re-save {what} as UTF-8 JSON",
        ) from None
    except OSError as exc:
        raise ConfigError(
            f"cannot read {what} at {path}: {exc.strerror or exc}",
            fix=f"make {what} a readable file",
        ) from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{what} is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno}) "
            f"in {path}",
            fix=f"repair {what} at that position (a JSON linter shows the spot)",
        ) from None
    except (ValueError, RecursionError) as exc:
        raise ConfigError(
            f"{what} is not valid JSON: {str(exc)[:200]} ({path})", fix=f"repair {what}"
        ) from None
    if not isinstance(value, dict):
        raise ConfigError(
            f"{what} holds a JSON {json_type_name(value)}, not an object ({path})",
            fix=f"{what} must be a JSON object {{...}}",
        )
    return value
