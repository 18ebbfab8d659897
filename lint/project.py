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


@dataclass(eq=False)
class ClassInfo:
    """A class statement and what the analysis needs from it."""

    node: ast.ClassDef
    module: ModuleInfo
    methods: dict[str, FunctionInfo] = field(default_factory=dict)
    fields: dict[str, ast.expr | None] = field(default_factory=dict)  # annotated class attributes
    framework: str | None = None  # "linen", "nnx", "haiku" or None, filled lazily
    resolved: bool = False

    @property
    def name(self) -> str:
        return self.node.name


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

    @property
    def name(self) -> str:
        return getattr(self.node, "name", "<lambda>")

    @property
    def params(self) -> list[ast.arg]:
        args = self.node.args
        return [*args.posonlyargs, *args.args, *args.kwonlyargs]

    @property
    def positional(self) -> list[str]:
        args = self.node.args
        return [a.arg for a in (*args.posonlyargs, *args.args)]

    @property
    def is_method(self) -> bool:
        if self.cls is None or isinstance(self.node, ast.Lambda):
            return False
        for deco in self.node.decorator_list:
            if isinstance(deco, ast.Name) and deco.id == "staticmethod":
                return False
        return True

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
    by_node: dict[int, FunctionInfo] = field(default_factory=dict)
    module_calls: list[ast.Call] = field(default_factory=list)
    module_assigned: dict[str, int] = field(default_factory=dict)  # name -> times bound
    loops: list[ast.For | ast.AsyncFor | ast.While] = field(default_factory=list)
    import_nodes: list[ast.Import | ast.ImportFrom] = field(default_factory=list)
    _lines: list[str] | None = None
    _rebound: frozenset[str] | None = None

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
    return module


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
