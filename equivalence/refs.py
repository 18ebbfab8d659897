"""Resolving ``path/to/file.py:NAME`` and ``package.module:NAME`` references.

This imports (and so runs) the referenced module: ``flaxify check`` is the one
command that executes user code, and says so in its ``--help``.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from flaxify.equivalence.errors import UnresolvableRefError

_FORMS = "expected path/to/file.py:NAME or package.module:NAME"


def resolve_ref(ref: str) -> Any:
    """Returns the object ``ref`` names; raises :class:`UnresolvableRefError` saying what is wrong."""
    target, sep, name = ref.rpartition(":")
    if not sep or not target or not name:
        raise UnresolvableRefError(f"bad reference {ref!r}: {_FORMS}")
    module = _load_file(Path(target)) if target.endswith(".py") else _load_module(target)
    obj: Any = module
    for part in name.split("."):
        if not hasattr(obj, part):
            raise UnresolvableRefError(f"{target} has no name {name!r}")
        obj = getattr(obj, part)
    return obj


def _load_file(path: Path) -> ModuleType:
    if not path.is_file():
        raise UnresolvableRefError(f"{path}: no such file")
    module_name = f"_flaxify_ref_{abs(hash(str(path.resolve())))}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise UnresolvableRefError(f"{path}: cannot be imported as a Python file")
    module = importlib.util.module_from_spec(spec)
    folder = str(path.resolve().parent)
    sys.path.insert(0, folder)  # so the file can import its siblings, as when run as a script
    before = set(sys.modules)
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        raise UnresolvableRefError(f"{path}:{exc.lineno}: syntax error: {exc.msg}") from None
    except Exception as exc:  # noqa: BLE001 - user code: report which file failed and why
        raise UnresolvableRefError(f"{path}: importing it raised {type(exc).__name__}: {exc}") from exc
    finally:
        sys.path.remove(folder)
        _forget_siblings(before, folder)
    sys.modules[module_name] = module
    return module


def _forget_siblings(before: set[str], folder: str) -> None:
    """Uncaches sibling modules the file imported, keeping the file's own references.

    The Haiku and the migrated Flax project usually have modules of the same
    names (``model``, ``layers``); without this the second reference would get
    the first project's siblings.
    """
    for name in set(sys.modules) - before:
        origin = getattr(sys.modules[name], "__file__", None) or ""
        if origin and str(Path(origin).resolve()).startswith(folder + "/"):
            del sys.modules[name]


def _load_module(dotted: str) -> ModuleType:
    try:
        return importlib.import_module(dotted)
    except ModuleNotFoundError as exc:
        raise UnresolvableRefError(f"cannot import {dotted!r}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - user code
        raise UnresolvableRefError(f"importing {dotted!r} raised {type(exc).__name__}: {exc}") from exc
