"""What one file needs to know about the others: which names are transformed models.

``train.py`` often does ``from model import net`` and calls ``net.apply``; the
call site moves with the model even though the two live in different files.
Before the files are migrated, :func:`index_sources` reads every Haiku file
once with Python's ``ast`` (cheap next to a LibCST parse) and records each
module-level ``name = hk.transform(...)``; the call-site pass looks imported
names up here.
"""

from __future__ import annotations

import ast
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from flaxify.migrate.base import TransformInfo
from flaxify.migrate.transforms import snake_to_camel

TRANSFORMS = {"transform": False, "transform_with_state": True}
RNG_APIS = frozenset({"next_rng_key", "maybe_next_rng_key", "dropout", "reserve_rng_keys", "next_rng_keys"})


@dataclass(frozen=True)
class ProjectIndex:
    """``(module file, variable)`` → the transform bound to that module-level name.

    The module file is its absolute path without ``.py`` (a package's
    ``__init__.py`` stands for the package folder), so two unrelated
    ``model.py`` files in one run never answer for each other.
    """

    transformed: Mapping[tuple[str, str], TransformInfo] = field(default_factory=dict)

    def imported_by(self, source: bytes) -> bool:
        """Cheap pre-check: does ``source`` import a module holding a transformed model?"""
        stems = {Path(module).name for module, _ in self.transformed}
        if not stems:
            return False
        pattern = rb"^\s*(?:from|import)\s+[\w.]*\b(?:%s)\b" % b"|".join(re.escape(s.encode()) for s in stems)
        return re.search(pattern, source, re.M) is not None

    def lookup(self, qualname: str, importer: str) -> TransformInfo | None:
        """Finds ``model.net`` / ``pkg.model.net`` / ``.model.net`` as imported by ``importer``.

        A relative import is resolved against the importer's folder. An absolute
        one is looked for below the importer's folder and then each folder above
        it (where a script or a project root puts it on ``sys.path``); the
        closest wins. No match: None (the call site is left alone).
        """
        module, _, variable = qualname.rpartition(".")
        if not module:
            return None
        folder = Path(os.path.abspath(importer)).parent
        dots = len(module) - len(module.lstrip("."))
        parts = module.lstrip(".").split(".")
        roots = [folder.parents[dots - 2] if dots > 1 else folder] if dots else [folder, *folder.parents]
        for root in roots:
            info = self.transformed.get((_module_key(root.joinpath(*parts)), variable))
            if info is not None:
                return info
        return None


def index_sources(files: Iterable[tuple[Path, bytes]]) -> ProjectIndex:
    """Reads the transformed module-level names of every Haiku file in ``files``."""
    found: dict[tuple[str, str], TransformInfo] = {}
    for path, source in files:
        if b"haiku" not in source:
            continue
        try:
            tree = ast.parse(source)
        except (SyntaxError, ValueError, RecursionError):  # ast gives up on very deep nesting
            continue  # the file's own migration reports it
        module = path.parent if path.name == "__init__.py" else path.with_suffix("")
        for variable, info in _transformed(tree).items():
            found[(_module_key(module), variable)] = info
    return ProjectIndex(found)


def _module_key(module: Path) -> str:
    return Path(os.path.abspath(module)).as_posix()


def _transformed(tree: ast.Module) -> dict[str, TransformInfo]:
    haiku = _haiku_aliases(tree)
    uses_rng = _uses_rng(tree, haiku)
    result: dict[str, TransformInfo] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.decorator_list:
            decorated = _decorated(node, haiku)
            if decorated is not None:
                apply_rng, with_state = decorated
                result[node.name] = TransformInfo(snake_to_camel(node.name), apply_rng, with_state, uses_rng)
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            chain = _chain(node.value, haiku)
            if chain is not None:
                fn, apply_rng, with_state = chain
                info = TransformInfo(snake_to_camel(fn), apply_rng, with_state, uses_rng)
                result[node.targets[0].id] = info
    return result


def _haiku_aliases(tree: ast.Module) -> dict[str, str]:
    """Local name → Haiku attribute (``""`` for the haiku module itself)."""
    aliases: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "haiku":
                    aliases[alias.asname or "haiku"] = ""
        elif isinstance(node, ast.ImportFrom) and node.module == "haiku":
            for alias in node.names:
                aliases[alias.asname or alias.name] = alias.name
    return aliases


def _api(func: ast.expr, haiku: Mapping[str, str]) -> str | None:
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and haiku.get(func.value.id) == "":
        return func.attr
    if isinstance(func, ast.Name) and haiku.get(func.id):
        return haiku[func.id]
    return None


def _chain(value: ast.expr, haiku: Mapping[str, str]) -> tuple[str, bool, bool] | None:
    if not isinstance(value, ast.Call) or not value.args:
        return None
    api = _api(value.func, haiku)
    if api == "without_apply_rng":
        inner = _chain(value.args[0], haiku)
        return None if inner is None else (inner[0], False, inner[2])
    if api in TRANSFORMS and isinstance(value.args[0], ast.Name):
        return value.args[0].id, True, TRANSFORMS[api]
    return None


def _decorated(node: ast.FunctionDef, haiku: Mapping[str, str]) -> tuple[bool, bool] | None:
    """``@hk.transform`` / ``@hk.transform_with_state`` under an optional ``@hk.without_apply_rng``."""
    apis = [_api(d, haiku) for d in node.decorator_list]
    if not apis or len(apis) > 2 or apis[-1] not in TRANSFORMS or any(a != "without_apply_rng" for a in apis[:-1]):
        return None
    return len(apis) == 1, TRANSFORMS[apis[-1]]


def _uses_rng(tree: ast.Module, haiku: Mapping[str, str]) -> bool:
    return any(
        isinstance(node, (ast.Attribute, ast.Name)) and _api(node, haiku) in RNG_APIS for node in ast.walk(tree)
    )
