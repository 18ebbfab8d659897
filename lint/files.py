"""Expand command-line paths into the Python files to lint."""

from __future__ import annotations

import os
from pathlib import Path
from collections.abc import Iterable

DEFAULT_EXCLUDES = frozenset(
    {".git", ".hg", ".svn", ".venv", "venv", ".tox", ".nox", "__pycache__", "build", "dist", "node_modules",
     ".mypy_cache", ".ruff_cache", ".pytest_cache", ".flaxify_cache", "__pypackages__", ".eggs", "site-packages"}
)


def discover(paths: Iterable[Path]) -> list[Path]:
    """Files given explicitly are kept as they are; folders are walked for ``*.py``, skipping tool folders."""
    found: list[Path] = []
    seen: set[Path] = set()
    for path in paths:
        if path.is_dir():
            candidates = _walk(path)
        else:
            candidates = [path]
        for candidate in candidates:
            key = candidate.resolve()
            if key not in seen:
                seen.add(key)
                found.append(candidate)
    return found


def _walk(root: Path) -> list[Path]:
    found: list[Path] = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in DEFAULT_EXCLUDES and not d.endswith(".egg-info"))
        found.extend(Path(folder, name) for name in sorted(files) if name.endswith((".py", ".pyi")))
    return found


def display_path(path: Path) -> str:
    """The path as a user would type it: relative to the working directory when inside it."""
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def read_source(path: Path) -> str | None:
    """The file's text, or None when it is not UTF-8 (reported as JX001)."""
    try:
        data = path.read_bytes()
        return data.decode("utf-8-sig")
    except (OSError, UnicodeDecodeError):
        return None
