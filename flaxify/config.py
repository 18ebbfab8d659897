"""Reads the ``[tool.flaxify]`` table of the nearest ``pyproject.toml``.

Settings are immutable: callers get a read-only mapping and build their own
frozen settings objects from it.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping


class ConfigError(Exception):
    """A pyproject.toml exists but cannot be read; the message names the file and line."""


def find_pyproject(start: Path) -> Path | None:
    """Returns the first ``pyproject.toml`` at or above ``start``, if any."""
    here = start.resolve()
    if here.is_file():
        here = here.parent
    for folder in (here, *here.parents):
        candidate = folder / "pyproject.toml"
        if candidate.is_file():
            return candidate
    return None


def load_config(start: Path, section: str | None = None) -> Mapping[str, Any]:
    """Returns ``[tool.flaxify]`` (or ``[tool.flaxify.<section>]``) as a read-only mapping.

    A missing file or table is an empty mapping; a malformed file raises
    :class:`ConfigError` naming the file, line and column.
    """
    path = find_pyproject(start)
    if path is None:
        return MappingProxyType({})
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: error: invalid TOML: {err}") from err
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: error: cannot read: {err}") from err
    table: Any = data.get("tool", {}).get("flaxify", {})
    if section is not None:
        table = table.get(section, {})
    if not isinstance(table, dict):
        where = "tool.flaxify" + (f".{section}" if section else "")
        raise ConfigError(f"{path}: error: [{where}] must be a table")
    return MappingProxyType(table)
