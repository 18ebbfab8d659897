"""Expand command-line paths into the Python files to lint."""

from __future__ import annotations

import io
import os
import tokenize
from collections.abc import Iterable
from pathlib import Path

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
    """The file's text, decoded as Python does (BOM, PEP 263 cookie, else UTF-8); None if it cannot be."""
    try:
        data = path.read_bytes()
        return decode_source(data)[0]
    except (OSError, UnicodeDecodeError, SyntaxError, LookupError):
        return None


def decode_source(data: bytes) -> tuple[str, str]:
    """(text, encoding) per PEP 263; raises UnicodeDecodeError, SyntaxError or LookupError."""
    encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    return data.decode(encoding), encoding
