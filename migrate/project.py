"""What one file needs to know about the others: which names are transformed models.

``train.py`` often does ``from model import net`` and calls ``net.apply``; the
call site moves with the model even though the two live in different files.
Before the files are migrated, :func:`index_sources` reads every Haiku file
once with Python's ``ast`` (cheap next to a LibCST parse) and records each
module-level ``name = hk.transform(...)``; the call-site pass looks imported
names up here.

A module-level factory (``def make_net(cfg): ...; return hk.transform(forward)``,
which ``transforms.py`` turns into one returning the module) is recorded under
its name followed by ``()`` (:data:`FACTORY_SUFFIX`): ``net = make_net(cfg)`` in
an importing file makes ``net`` a transformed name there
(:meth:`ProjectIndex.lookup_factory`). Keeping factories in the same mapping
keeps the index one plain dict for worker processes.
"""

from __future__ import annotations

import ast
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from flaxify.migrate.base import TransformInfo
from flaxify.migrate.transform_scopes import partial_problem
from flaxify.migrate.transforms import snake_to_camel

TRANSFORMS = {"transform": False, "transform_with_state": True}
FACTORY_SUFFIX = "()"  # `(module, "make_net()")`: what calling the factory make_net returns
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

    def lookup_factory(self, qualname: str, importer: str) -> TransformInfo | None:
        """What calling the factory ``qualname`` (``model.make_net``) returns, as :meth:`lookup` finds it."""
        return self.lookup(qualname + FACTORY_SUFFIX, importer)


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
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and not node.decorator_list:
            factory = _factory(node, haiku, tree)
            if factory is not None:
                fn, apply_rng, with_state = factory
                result[node.name + FACTORY_SUFFIX] = TransformInfo(snake_to_camel(fn), apply_rng, with_state, uses_rng)
    return result


def _factory(node: ast.FunctionDef, haiku: Mapping[str, str], tree: ast.Module) -> tuple[str, bool, bool] | None:
    """``(fn, apply_rng, with_state)`` when every return of ``node`` transforms a def ``transforms.py`` converts.

    The same rules as ``ConvertTransformsCommand._plan_factory``: a def of the
    factory (or, unshadowed, of the module) without decorators, or a
    ``functools.partial`` of one that :func:`partial_problem` accepts. A factory
    the engine leaves TODO must not have its callers' ``init``/``apply`` rewritten.
    """
    scope = _own_scope(node)
    returns = [n for n in scope if isinstance(n, ast.Return)]
    functools = _haiku_aliases(tree, "functools")
    found: list[tuple[str, bool, bool]] = []
    for ret in returns:
        chain = _chain(ret.value, haiku, partial=functools) if ret.value is not None else None
        if chain is None:
            return None
        fn = chain[0]
        local = [d for d in scope if isinstance(d, ast.FunctionDef | ast.AsyncFunctionDef) and d.name == fn]
        top = [d for d in tree.body if isinstance(d, ast.FunctionDef | ast.AsyncFunctionDef) and d.name == fn]
        target = local or ([] if fn in _bound_in(node, scope) else top)
        if len(target) != 1 or target[0].decorator_list or isinstance(target[0], ast.AsyncFunctionDef):
            return None
        bound = _partial_of(ret.value, haiku, functools)  # type: ignore[arg-type]
        if bound is not None:
            uses = _count_name(node.body if local else tree.body, fn)
            parameters = [a.arg for a in (*target[0].args.args, *target[0].args.kwonlyargs)]
            if partial_problem(fn, bound, parameters, uses) is not None:
                return None
        found.append(chain)
    if not found or len({(a, w) for _, a, w in found}) != 1:
        return None
    return found[0]


def _count_name(body: list[ast.stmt], name: str) -> int:
    """How often ``name`` is spelled in ``body``, counted as ``transforms.py`` counts LibCST ``Name`` nodes."""
    count = 0
    for statement in body:
        for n in ast.walk(statement):
            spelled = (
                n.id if isinstance(n, ast.Name)
                else n.name if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
                else n.attr if isinstance(n, ast.Attribute)
                else n.arg if isinstance(n, ast.arg | ast.keyword)
                else None
            )  # fmt: skip
            count += spelled == name
    return count


def _own_scope(node: ast.FunctionDef) -> list[ast.AST]:
    """The nodes of a def's body outside nested defs, classes and lambdas (those nodes themselves included)."""
    nodes: list[ast.AST] = []
    stack: list[ast.AST] = list(node.body)
    while stack:
        current = stack.pop()
        nodes.append(current)
        if not isinstance(current, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda):
            stack.extend(ast.iter_child_nodes(current))
    return nodes


def _bound_in(node: ast.FunctionDef, scope: list[ast.AST]) -> set[str]:
    """Names a def's parameters or own assignments bind."""
    arguments = node.args
    every = (*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs, arguments.vararg, arguments.kwarg)
    names = {a.arg for a in every if a is not None}
    names.update(n.id for n in scope if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store))
    return names


def _partial_of(value: ast.expr, haiku: Mapping[str, str], functools: Mapping[str, str]) -> list[str | None] | None:
    """The keywords (None: positional) a ``functools.partial`` inside the transform binds, if it is one."""
    while isinstance(value, ast.Call) and _api(value.func, haiku) in ("without_apply_rng", *TRANSFORMS) and value.args:
        value = value.args[0]
    if not isinstance(value, ast.Call) or not _is_partial(value.func, functools):
        return None
    bound: list[str | None] = [("*" if isinstance(a, ast.Starred) else None) for a in value.args[1:]]
    return bound + [k.arg or "**" for k in value.keywords]


def _is_partial(func: ast.expr, functools: Mapping[str, str]) -> bool:
    """``functools.partial`` in any import spelling (``functools``: the file's aliases, from ``_haiku_aliases``)."""
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
        return func.attr == "partial" and functools.get(func.value.id) == ""
    return isinstance(func, ast.Name) and functools.get(func.id) == "partial"


def _haiku_aliases(tree: ast.Module, module: str = "haiku") -> dict[str, str]:
    """Local name → attribute of ``module`` (``""`` for the module itself); Haiku's by default."""
    aliases: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == module:
                    aliases[alias.asname or module] = ""
        elif isinstance(node, ast.ImportFrom) and node.module == module:
            for alias in node.names:
                aliases[alias.asname or alias.name] = alias.name
    return aliases


def _api(func: ast.expr, haiku: Mapping[str, str]) -> str | None:
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and haiku.get(func.value.id) == "":
        return func.attr
    if isinstance(func, ast.Name) and haiku.get(func.id):
        return haiku[func.id]
    return None


def _chain(
    value: ast.expr, haiku: Mapping[str, str], *, partial: Mapping[str, str] | None = None
) -> tuple[str, bool, bool] | None:
    """``(fn, apply_rng, with_state)`` of ``hk.without_apply_rng(hk.transform(fn))``.

    Given the file's ``functools`` aliases as ``partial``, ``fn`` may also be
    ``functools.partial(fn, ...)``.
    """
    if not isinstance(value, ast.Call) or not value.args:
        return None
    api = _api(value.func, haiku)
    if api == "without_apply_rng":
        inner = _chain(value.args[0], haiku, partial=partial)
        return None if inner is None else (inner[0], False, inner[2])
    fn = value.args[0]
    if partial is not None and isinstance(fn, ast.Call) and _is_partial(fn.func, partial) and fn.args:
        fn = fn.args[0]
    if api in TRANSFORMS and isinstance(fn, ast.Name):
        return fn.id, True, TRANSFORMS[api]
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
