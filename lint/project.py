"""The project model: modules, classes and functions, and how names resolve between them.

One recursive pass per module records what the analysis needs later, so no
function body is walked twice to find its calls or its assignments:

* every function (``def`` and ``lambda``) with its parameters, local names,
  ``global``/``nonlocal`` declarations, calls and assignment facts;
* every class with its bases, methods and annotated fields;
* the imports, so that names resolve across the project's modules.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flaxify.lint.names import ImportMap

FunctionNode = ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda

# The fields that hold syntax trees. ``-j`` ships the index between processes without them (a
# *summary*: names, scopes, imports); the first read of one of them re-parses the file (see
# ``ModuleInfo.materialize``), so code that only resolves names never pays for a parse.
_MODULE_TREES = frozenset({"tree", "by_node", "module_calls", "loops", "import_nodes"})
_MODULE_DROPPED = _MODULE_TREES | {"source", "_lines"}  # the receiver already holds every source
_CLASS_TREES = frozenset({"node", "fields"})
_FUNCTION_TREES = frozenset({"node", "calls", "returns", "facts"})


def _summary_state(obj: object, dropped: frozenset[str]) -> dict[str, Any]:
    return {k: v for k, v in obj.__dict__.items() if k not in dropped}


def _materialized_attribute(obj: object, module: ModuleInfo | None, name: str) -> Any:
    """``name`` of a summary object, after re-parsing its module; AttributeError when that does not help."""
    if module is not None and "tree" not in module.__dict__ and "source" in module.__dict__:
        module.materialize()
        if name in obj.__dict__:
            return obj.__dict__[name]
    raise AttributeError(name)


@dataclass(eq=False)
class ClassInfo:
    """A class statement and what the analysis needs from it."""

    node: ast.ClassDef
    module: ModuleInfo
    methods: dict[str, FunctionInfo] = field(default_factory=dict)
    fields: dict[str, ast.expr | None] = field(default_factory=dict)  # annotated class attributes
    framework: str | None = None  # "linen", "nnx", "haiku" or None, filled lazily
    resolved: bool = False
    name: str = field(init=False)
    # Qualified name of each base (None when not rooted in an import), read once the whole module
    # is indexed: base classes resolve by name without touching the tree.
    bases: tuple[str | None, ...] = field(init=False, default=())

    def __post_init__(self) -> None:
        self.name = self.node.name

    def __getstate__(self) -> dict[str, Any]:
        return _summary_state(self, _CLASS_TREES)

    def __getattr__(self, name: str) -> Any:
        if name not in _CLASS_TREES:
            raise AttributeError(name)
        return _materialized_attribute(self, self.__dict__.get("module"), name)


@dataclass(eq=False)
class FunctionInfo:
    """A ``def`` or ``lambda`` and the facts collected in one pass over its body."""

    node: FunctionNode
    module: ModuleInfo
    qualname: str
    cls: ClassInfo | None = None  # set when the def sits directly in a class body
    parent: FunctionInfo | None = None
    nested: dict[str, FunctionInfo] = field(default_factory=dict)
    locals: set[str] = field(default_factory=set)
    declared_global: set[str] = field(default_factory=set)
    declared_nonlocal: set[str] = field(default_factory=set)
    calls: list[ast.Call] = field(default_factory=list)
    returns: list[ast.expr] = field(default_factory=list)
    is_generator: bool = False
    # (target, value, how): how is "assign", "aug", "iter" (for/comprehension) or "with".
    facts: list[tuple[ast.expr, ast.expr, str]] = field(default_factory=list)
    # Read from the tree once, so that resolving a call to this function needs no tree.
    name: str = field(init=False)
    positional: list[str] = field(init=False)
    is_method: bool = field(init=False)
    # Width of the tuple every ``return`` builds; None unless all returns are same-width tuple displays.
    tuple_width: int | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        node = self.node
        self.name = getattr(node, "name", "<lambda>")
        self.positional = [a.arg for a in (*node.args.posonlyargs, *node.args.args)]
        self.is_method = self.cls is not None and not isinstance(node, ast.Lambda) and not any(
            isinstance(deco, ast.Name) and deco.id == "staticmethod" for deco in node.decorator_list)

    def __getstate__(self) -> dict[str, Any]:
        return _summary_state(self, _FUNCTION_TREES)

    def __getattr__(self, name: str) -> Any:
        if name not in _FUNCTION_TREES:
            raise AttributeError(name)
        return _materialized_attribute(self, self.__dict__.get("module"), name)

    @property
    def params(self) -> list[ast.arg]:
        args = self.node.args
        return [*args.posonlyargs, *args.args, *args.kwonlyargs]

    def location(self) -> str:
        return f"{self.module.display}:{self.node.lineno}"


@dataclass(eq=False)
class ModuleInfo:
    """One parsed file."""

    path: Path
    display: str
    name: str
    tree: ast.Module
    source: str
    imports: ImportMap
    functions: dict[str, FunctionInfo] = field(default_factory=dict)
    classes: dict[str, ClassInfo] = field(default_factory=dict)
    all_functions: list[FunctionInfo] = field(default_factory=list)
    all_classes: list[ClassInfo] = field(default_factory=list)  # every class statement, in source order
    by_node: dict[int, FunctionInfo] = field(default_factory=dict)
    module_calls: list[ast.Call] = field(default_factory=list)
    module_assigned: dict[str, int] = field(default_factory=dict)  # name -> times bound
    loops: list[ast.For | ast.AsyncFor | ast.While] = field(default_factory=list)
    import_nodes: list[ast.Import | ast.ImportFrom] = field(default_factory=list)
    # False when no decorator or call here can start a traced region (``-j`` computes it per file, so
    # the project-wide analysis skips those bodies); classes are seeded either way.
    may_seed: bool = True
    _lines: list[str] | None = None
    _rebound: frozenset[str] | None = None

    def __getstate__(self) -> dict[str, Any]:
        """A summary: everything but the trees and the source (which every process already holds)."""
        return _summary_state(self, _MODULE_DROPPED)

    def __getattr__(self, name: str) -> Any:
        if name not in _MODULE_TREES:
            raise AttributeError(name)
        return _materialized_attribute(self, self, name)

    @property
    def materialized(self) -> bool:
        """True when this module holds its syntax tree (always, except for an unread ``-j`` summary)."""
        return "tree" in self.__dict__

    def materialize(self) -> None:
        """Gives a summary its trees back: parses the source again and grafts the nodes in place.

        The summary's FunctionInfo and ClassInfo objects stay the same objects (the analysis keys
        dictionaries by them); indexing is deterministic, so the n-th function of the fresh index is
        the n-th of the summary.
        """
        if self.materialized:
            return
        fresh = index_module(self.path, self.display, self.source, ast.parse(self.source, filename=self.display))
        if [f.qualname for f in fresh.all_functions] != [f.qualname for f in self.all_functions] or len(
                fresh.all_classes) != len(self.all_classes):
            raise RuntimeError(f"{self.display}: the file indexes differently than when it was summarised")
        self.tree, self.module_calls = fresh.tree, fresh.module_calls
        self.loops, self.import_nodes = fresh.loops, fresh.import_nodes
        self.by_node = {}
        for mine, new in zip(self.all_functions, fresh.all_functions):
            mine.node, mine.calls, mine.returns, mine.facts = new.node, new.calls, new.returns, new.facts
            self.by_node[id(new.node)] = mine
        for cls, new_cls in zip(self.all_classes, fresh.all_classes):
            cls.node, cls.fields = new_cls.node, new_cls.fields

    @property
    def rebound_globals(self) -> frozenset[str]:
        """Module-level names bound more than once, or assigned under ``global`` in a function."""
        if self._rebound is None:
            names = {n for n, count in self.module_assigned.items() if count > 1}
            for fn in self.all_functions:
                names |= fn.declared_global & fn.locals
            self._rebound = frozenset(names)
        return self._rebound

    @property
    def lines(self) -> list[str]:
        if self._lines is None:
            self._lines = self.source.splitlines()
        return self._lines

    def char_column(self, line: int, byte_offset: int) -> int:
        """ast columns are UTF-8 byte offsets; findings count characters."""
        if not 0 < line <= len(self.lines) or self.lines[line - 1].isascii():
            return byte_offset
        return len(self.lines[line - 1].encode("utf-8")[:byte_offset].decode("utf-8", "replace"))


def module_name(path: Path) -> tuple[str, bool]:
    """Dotted module name from the package folders above ``path``; and whether it is a package."""
    path = path.resolve()
    is_package = path.name == "__init__.py"
    parts = [] if is_package else [path.stem]
    folder = path.parent
    while (folder / "__init__.py").is_file():
        parts.append(folder.name)
        if folder.parent == folder:
            break
        folder = folder.parent
    if not parts:
        parts = [path.parent.name]
    return ".".join(reversed(parts)), is_package


class _Indexer:
    """Fills a ModuleInfo in one recursive pass, keeping a stack of scopes."""

    def __init__(self, module: ModuleInfo) -> None:
        self.module = module
        self.func: FunctionInfo | None = None
        self.cls: ClassInfo | None = None

    def run(self) -> None:
        for stmt in self.module.tree.body:
            self.visit(stmt)

    def visit(self, node: ast.AST) -> None:
        handler = _HANDLERS.get(type(node))
        if handler is not None:
            handler(self, node)
            return
        for child in ast.iter_child_nodes(node):
            self.visit(child)

    # --- scopes -----------------------------------------------------------
    def visit_function(self, node: FunctionNode) -> None:
        if not isinstance(node, ast.Lambda):
            for deco in node.decorator_list:
                self.visit(deco)
            if node.returns is not None:
                self.visit(node.returns)
        for default in (*node.args.defaults, *node.args.kw_defaults):
            if default is not None:
                self.visit(default)
        info = self._new_function(node)
        outer_func, outer_cls = self.func, self.cls
        self.func, self.cls = info, None
        if isinstance(node, ast.Lambda):
            info.returns.append(node.body)
        body = [node.body] if isinstance(node, ast.Lambda) else node.body
        for stmt in body:
            self.visit(stmt)
        self.func, self.cls = outer_func, outer_cls

    def _new_function(self, node: FunctionNode) -> FunctionInfo:
        name = getattr(node, "name", "<lambda>")
        parent, cls = self.func, self.cls
        prefix = parent.qualname if parent else (cls.name if cls else "")
        info = FunctionInfo(node, self.module, f"{prefix}.{name}" if prefix else name, cls, parent)
        info.locals.update(a.arg for a in info.params)
        for extra in (node.args.vararg, node.args.kwarg):
            if extra is not None:
                info.locals.add(extra.arg)
        self.module.all_functions.append(info)
        self.module.by_node[id(node)] = info
        if isinstance(node, ast.Lambda):
            return info
        if parent is not None:
            parent.nested[name] = info
            parent.locals.add(name)
        elif cls is not None:
            cls.methods[name] = info
        else:
            self.module.functions[name] = info
            self._bind_module_name(name)
        return info

    def visit_class(self, node: ast.ClassDef) -> None:
        for expr in (*node.decorator_list, *node.bases, *(k.value for k in node.keywords)):
            self.visit(expr)
        info = ClassInfo(node, self.module)
        self.module.all_classes.append(info)
        if self.func is None and self.cls is None:
            self.module.classes[node.name] = info
            self._bind_module_name(node.name)
        elif self.func is not None:
            self.func.locals.add(node.name)
        outer_cls = self.cls
        self.cls = info
        for stmt in node.body:
            if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
                info.fields[stmt.target.id] = stmt.value
            self.visit(stmt)
        self.cls = outer_cls

    def _bind_module_name(self, name: str) -> None:
        self.module.imports.bound[name] = f"{self.module.name}.{name}"
        self.module.module_assigned[name] = self.module.module_assigned.get(name, 0) + 1

    # --- facts --------------------------------------------------------------
    def visit_import(self, node: ast.Import) -> None:
        self.module.import_nodes.append(node)
        self.module.imports.add_import(node)
        if self.func is not None:
            self.func.locals.update((a.asname or a.name).partition(".")[0] for a in node.names)

    def visit_import_from(self, node: ast.ImportFrom) -> None:
        self.module.import_nodes.append(node)
        self.module.imports.add_import_from(node)
        if self.func is not None:
            self.func.locals.update(a.asname or a.name for a in node.names)

    def visit_call(self, node: ast.Call) -> None:
        if self.func is not None:
            self.func.calls.append(node)
        else:
            self.module.module_calls.append(node)
        for child in ast.iter_child_nodes(node):
            self.visit(child)

    def visit_name(self, node: ast.Name) -> None:
        if not isinstance(node.ctx, ast.Store):
            return
        if self.func is not None:
            self.func.locals.add(node.id)
        elif self.cls is None:
            assigned = self.module.module_assigned
            assigned[node.id] = assigned.get(node.id, 0) + 1

    def visit_return(self, node: ast.Return) -> None:
        if self.func is not None and node.value is not None:
            self.func.returns.append(node.value)
        self._children(node)

    def visit_yield(self, node: ast.Yield | ast.YieldFrom) -> None:
        if self.func is not None:
            self.func.is_generator = True
        self._children(node)

    def visit_global(self, node: ast.Global) -> None:
        if self.func is not None:
            self.func.declared_global.update(node.names)

    def visit_nonlocal(self, node: ast.Nonlocal) -> None:
        if self.func is not None:
            self.func.declared_nonlocal.update(node.names)

    def _fact(self, target: ast.expr, value: ast.expr, how: str) -> None:
        if self.func is not None:
            self.func.facts.append((target, value, how))

    def visit_assign(self, node: ast.Assign) -> None:
        for target in node.targets:
            self._fact(target, node.value, "assign")
        self._children(node)

    def visit_ann_assign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:
            self._fact(node.target, node.value, "assign")
        self._children(node)

    def visit_aug_assign(self, node: ast.AugAssign) -> None:
        self._fact(node.target, node.value, "aug")
        self._children(node)

    def visit_named_expr(self, node: ast.NamedExpr) -> None:
        self._fact(node.target, node.value, "assign")
        self._children(node)

    def visit_for(self, node: ast.For | ast.AsyncFor) -> None:
        self.module.loops.append(node)
        self._fact(node.target, node.iter, "iter")
        self._children(node)

    def visit_while(self, node: ast.While) -> None:
        self.module.loops.append(node)
        self._children(node)

    def visit_comprehension(self, node: ast.comprehension) -> None:
        self._fact(node.target, node.iter, "iter")
        self._children(node)

    def visit_with(self, node: ast.With | ast.AsyncWith) -> None:
        for item in node.items:
            if item.optional_vars is not None:
                self._fact(item.optional_vars, item.context_expr, "with")
        self._children(node)

    def _children(self, node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            self.visit(child)


_HANDLERS: dict[type, Callable[[_Indexer, Any], None]] = {
    ast.FunctionDef: _Indexer.visit_function,
    ast.AsyncFunctionDef: _Indexer.visit_function,
    ast.Lambda: _Indexer.visit_function,
    ast.ClassDef: _Indexer.visit_class,
    ast.Import: _Indexer.visit_import,
    ast.ImportFrom: _Indexer.visit_import_from,
    ast.Call: _Indexer.visit_call,
    ast.Name: _Indexer.visit_name,
    ast.Return: _Indexer.visit_return,
    ast.Yield: _Indexer.visit_yield,
    ast.YieldFrom: _Indexer.visit_yield,
    ast.Global: _Indexer.visit_global,
    ast.Nonlocal: _Indexer.visit_nonlocal,
    ast.Assign: _Indexer.visit_assign,
    ast.AnnAssign: _Indexer.visit_ann_assign,
    ast.AugAssign: _Indexer.visit_aug_assign,
    ast.NamedExpr: _Indexer.visit_named_expr,
    ast.For: _Indexer.visit_for,
    ast.AsyncFor: _Indexer.visit_for,
    ast.While: _Indexer.visit_while,
    ast.comprehension: _Indexer.visit_comprehension,
    ast.With: _Indexer.visit_with,
    ast.AsyncWith: _Indexer.visit_with,
}


def index_module(path: Path, display: str, source: str, tree: ast.Module) -> ModuleInfo:
    """Builds the ModuleInfo of one parsed file."""
    name, is_package = module_name(path)
    module = ModuleInfo(path, display, name, tree, source, ImportMap(name, is_package))
    _Indexer(module).run()
    # Both read the finished import map (an import may follow the class or function that uses it).
    for cls in module.all_classes:
        cls.bases = tuple(module.imports.qualname(base) for base in cls.node.bases)
    for fn in module.all_functions:
        fn.tuple_width = _tuple_width(fn.returns)
    return module


def release(modules: list[ModuleInfo]) -> None:
    """Breaks the module <-> function <-> class reference cycles of a finished run.

    Reference counting then frees the trees at once, while the cyclic GC is still off; left as
    cycles, they would cost the next collection a scan of millions of nodes (about a quarter of a
    run on the jax package). Nothing may use ``modules`` afterwards.
    """
    for module in modules:
        for fn in module.all_functions:
            fn.__dict__.clear()
        for cls in module.all_classes:
            cls.__dict__.clear()
        module.__dict__.clear()


def _tuple_width(values: list[ast.expr]) -> int | None:
    """The width when every value is a tuple display of one width without ``*``; else None."""
    if not values or not all(isinstance(v, ast.Tuple) for v in values):
        return None
    widths = {len(v.elts) for v in values}  # type: ignore[attr-defined]
    if len(widths) != 1 or any(isinstance(e, ast.Starred) for v in values for e in v.elts):  # type: ignore[attr-defined]
        return None
    return widths.pop()


class Project:
    """All modules of one lint run, and name resolution across them."""

    def __init__(self, modules: list[ModuleInfo]) -> None:
        self.modules = modules
        self.by_name: dict[str, list[ModuleInfo]] = {}
        for module in modules:
            self.by_name.setdefault(module.name, []).append(module)

    def module_named(self, name: str, near: ModuleInfo | None) -> ModuleInfo | None:
        """The project module called ``name``; with duplicates, the one nearest ``near``."""
        found = self.by_name.get(name)
        if not found:
            return None
        if len(found) == 1 or near is None:
            return found[0]
        return min(found, key=lambda m: _distance(m.path, near.path))

    def lookup(self, qualname: str, near: ModuleInfo | None, depth: int = 0) -> FunctionInfo | ClassInfo | None:
        """The project function or class a qualified name denotes, following re-exports."""
        if depth > 8:
            return None
        # Try every split point: "pkg.mod.Class.method" has module "pkg.mod".
        parts = qualname.split(".")
        for cut in range(len(parts) - 1, 0, -1):
            module = self.module_named(".".join(parts[:cut]), near)
            if module is None:
                continue
            return self._in_module(module, parts[cut:], depth)
        return None

    def _in_module(self, module: ModuleInfo, names: list[str], depth: int) -> FunctionInfo | ClassInfo | None:
        first, rest = names[0], names[1:]
        if first in module.functions and not rest:
            return module.functions[first]
        if first in module.classes:
            cls = module.classes[first]
            if not rest:
                return cls
            return cls.methods.get(rest[0]) if len(rest) == 1 else None
        target = module.imports.bound.get(first)
        if target is not None and target != f"{module.name}.{first}":
            return self.lookup(".".join([target, *rest]), module, depth + 1)
        return None


def _distance(a: Path, b: Path) -> int:
    pa, pb = a.parent.parts, b.parent.parts
    common = 0
    for x, y in zip(pa, pb):
        if x != y:
            break
        common += 1
    return len(pa) + len(pb) - 2 * common
