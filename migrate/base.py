"""What every migrate pass shares: the state between passes, name resolution,
and the ``# TODO(flaxify): ...`` markers.

Names are resolved through LibCST's scope analysis (the qualified names
``QualifiedNameProvider`` gives), never by spelling, so ``import haiku as hk``,
``from haiku import Linear`` and ``import haiku.nets as nets`` are all
recognised; spelling only proves that a name cannot be Haiku's.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field, fields, replace
from functools import cache, cached_property
from typing import TYPE_CHECKING

import libcst as cst
from libcst._metadata_dependent import _UNDEFINED_DEFAULT, MetadataDependent
from libcst.codemod import Codemod, CodemodContext
from libcst.codemod.visitors import AddImportsVisitor
from libcst.helpers import get_full_name_for_node
from libcst.metadata import MetadataWrapper, QualifiedNameProvider, ScopeProvider
from libcst.metadata.base_provider import ProviderT

from flaxify.migrate.api import TODO_PREFIX
from flaxify.migrate.bindings import BOUND_INITIALIZER
from flaxify.migrate.layers import DEPENDENCIES as LAYER_DEPENDENCIES
from flaxify.migrate.layers import helper_class
from flaxify.migrate.lifted import DEPENDENCIES as LIFTED_DEPENDENCIES
from flaxify.migrate.recurrent import DEPENDENCIES as RECURRENT_DEPENDENCIES
from flaxify.migrate.rewrite import ImportSpec, Rewrite, Unsupported

if TYPE_CHECKING:
    from flaxify.migrate.project import ProjectIndex

# Helpers another emitted helper refers to (LSTM -> LSTMState, layer_stack -> LayerStackBody).
HELPER_DEPENDENCIES = {**RECURRENT_DEPENDENCIES, **LIFTED_DEPENDENCIES, **LAYER_DEPENDENCIES}

STATE_KEY = "flaxify"
# Scratch key: the MetadataWrapper of the tree the last pass left unchanged.
ANALYSED_KEY = "flaxify.analysed"

# visit_Call_func, leave_Attribute_attr, ...: node type names have no underscore.
_ATTRIBUTE_HOOK = re.compile(r"(?:visit|leave)_[A-Z][A-Za-z]*_[a-z]")

# Haiku callables named like classes that do not build modules.
NOT_MODULES = frozenset(
    {
        "Module",
        "RNNCore",
        "Transformed",
        "TransformedWithState",
        "MultiTransformed",
        "MultiTransformedWithState",
        "PRNGSequence",
        "BatchApply",  # a shape wrapper, not a module: batch_apply.py
        "LSTMState",
        "Params",
        "State",
        "MutableParams",
        "MutableState",
        "SupportsCall",
    }
)

# Haiku calls that create or read variables of the current module (or, for
# hk.dropout, hk.remat and hk.layer_stack, become inline Linen modules): a method using one of them needs a
# Linen compact scope, like one that builds layers. RNG key calls become
# self.make_rng, which works in any method.
VARIABLE_CALLS = frozenset(
    {
        "haiku.get_parameter",
        "haiku.get_state",
        "haiku.set_state",
        "haiku.dropout",
        "haiku.remat",
        "haiku.vmap",
        "haiku.scan",
        "haiku.map",
        "haiku.cond",
        "haiku.switch",
        "haiku.checkpoint",
        "haiku.layer_stack",
        "haiku.experimental.layer_stack",
    }
)


@dataclass(frozen=True)
class TransformInfo:
    """A variable bound to ``hk.transform(...)``, now a Linen module instance."""

    class_name: str
    apply_rng: bool  # False under hk.without_apply_rng: apply takes no rng
    with_state: bool
    uses_rng: bool = False  # its file draws random numbers (hk.next_rng_key, hk.dropout)
    # hk.multi_transform: the method init runs, and apply key -> method name.
    init_method: str = "__call__"
    methods: tuple[tuple[str | int, str], ...] = ()


@dataclass
class MigrationState:
    """Facts one pass leaves for the next (one instance per file)."""

    nn: str  # local name of flax.linen
    jnp: str  # local name of jax.numpy
    # Local classes that are Haiku modules (converted to Linen), with their
    # Haiku default base name (camel_to_snake(cls) unless __init__ overrides it).
    module_classes: dict[str, str] = field(default_factory=dict)
    # Classes made by transforms.py from transformed functions.
    wrapper_classes: set[str] = field(default_factory=set)
    transformed: dict[str, TransformInfo] = field(default_factory=dict)
    uses_rng: bool = False
    # Haiku APIs whose rewrite constructs a helper class emitted once per file
    # (hk.nets.MLP → MLP, hk.Bias → Bias; see layers.helper_class).
    helper_classes: set[str] = field(default_factory=set)
    # Module-level names the file defines itself (not helpers flaxify emitted
    # earlier): an exact helper of the same name cannot be emitted.
    user_names: frozenset[str] = frozenset()
    # Module classes that are only ever the Flax root (an hk.multi_transform
    # template's module): their other methods may get nn.compact_name_scope.
    root_classes: set[str] = field(default_factory=set)
    # Transformed names of the other files being migrated (project.py).
    project: "ProjectIndex | None" = None
    # Names that certainly hold an initializer flaxify rewrites (bindings.py):
    # `w_init=NAME` passes them through.
    initializer_names: frozenset[str] = frozenset()


def choose_aliases(tree: cst.Module) -> tuple[str, str]:
    """Picks local names for flax.linen and jax.numpy that do not shadow anything.

    An existing ``import flax.linen as X`` / ``import jax.numpy as Y`` wins.
    """
    nn, jnp = _existing_alias(tree, "flax.linen"), _existing_alias(tree, "jax.numpy")
    taken = _bound_names(tree)
    if nn is None:
        nn = next(n for n in ("nn", "linen", "flax_nn") if n not in taken)
    if jnp is None:
        jnp = next(n for n in ("jnp", "jax_numpy") if n not in taken)
    return nn, jnp


def user_defined_names(tree: cst.Module) -> frozenset[str]:
    """Top-level class/def names, except helpers flaxify emitted (their docstrings start ``Haiku's``)."""
    names = set()
    for stmt in tree.body:
        if isinstance(stmt, (cst.ClassDef, cst.FunctionDef)):
            doc = stmt.get_docstring() or ""
            if not doc.startswith("Haiku's "):
                names.add(stmt.name.value)
    return frozenset(names)


def _existing_alias(tree: cst.Module, module: str) -> str | None:
    for stmt in tree.body:
        if not isinstance(stmt, cst.SimpleStatementLine):
            continue
        for small in stmt.body:
            if isinstance(small, cst.Import):
                for alias in small.names:
                    if _dotted(alias.name) == module and alias.asname is not None:
                        return alias.evaluated_alias
    return None


def _bound_names(tree: cst.Module) -> set[str]:
    """Module-level names that an added import must not shadow."""
    names: set[str] = set()
    for node in _walk_top(tree):
        if isinstance(node, (cst.ClassDef, cst.FunctionDef)):
            names.add(node.name.value)
        elif isinstance(node, (cst.Import, cst.ImportFrom)) and not isinstance(node.names, cst.ImportStar):
            for alias in node.names:
                names.add(alias.evaluated_alias or _dotted(alias.name).split(".")[0])
        elif isinstance(node, cst.Assign):
            for target in node.targets:
                if isinstance(target.target, cst.Name):
                    names.add(target.target.value)
    return names


def import_table(tree: cst.Module) -> dict[str, str]:
    """Local name → qualified name for every import in the file (any depth).

    Imports are statements, so only statements and blocks are walked (expressions
    are most of a tree); blocks are entered in the order a walk over every child
    would enter them, so a name imported twice keeps the same winner.
    """
    table: dict[str, str] = {}
    stack: list[cst.CSTNode] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, cst.Import):
            for alias in node.names:
                dotted = _dotted(alias.name)
                if alias.asname is not None:
                    table[alias.evaluated_alias] = dotted  # type: ignore[index]
                else:
                    table[dotted.split(".")[0]] = dotted.split(".")[0]
        elif isinstance(node, cst.ImportFrom):
            if node.module is not None and not node.relative and not isinstance(node.names, cst.ImportStar):
                for alias in node.names:
                    local = alias.evaluated_alias or _dotted(alias.name)
                    table[local] = f"{_dotted(node.module)}.{_dotted(alias.name)}"
        else:
            stack.extend(statement_children(node))
    return table


# Fields that hold statements or blocks, in source order (try: body, except, else, finally).
_BLOCK_FIELDS = ("body", "handlers", "orelse", "finalbody", "cases")


def walk_statements(tree: cst.CSTNode) -> Iterator[cst.CSTNode]:
    """Every small and compound statement in ``tree``, at any depth, in source order."""
    stack: list[cst.CSTNode] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, (cst.BaseSmallStatement, cst.BaseCompoundStatement)):
            yield node
        stack.extend(reversed(statement_children(node)))


def statement_children(node: cst.CSTNode) -> list[cst.CSTNode]:
    """The children of ``node`` that are or hold statements, in source order.

    Statements never sit inside expressions (a lambda's body is an expression),
    so a walk over these reaches every statement of a tree.
    """
    children: list[cst.CSTNode] = []
    if isinstance(node, cst.SimpleStatementLine):
        return list(node.body)
    if not isinstance(node, _BLOCK_HOLDERS):
        return children
    for name in _BLOCK_FIELDS:
        value = getattr(node, name, None)
        if isinstance(value, cst.CSTNode):
            children.append(value)
        elif isinstance(value, (list, tuple)):
            children.extend(value)
    return children


_BLOCK_HOLDERS = (
    cst.Module,
    cst.BaseCompoundStatement,
    cst.BaseSuite,
    cst.Else,
    cst.ExceptHandler,
    cst.ExceptStarHandler,
    cst.Finally,
    cst.MatchCase,
)


def _walk_top(tree: cst.Module) -> list[cst.CSTNode]:
    nodes: list[cst.CSTNode] = []
    for stmt in tree.body:
        if isinstance(stmt, cst.SimpleStatementLine):
            nodes.extend(stmt.body)
        else:
            nodes.append(stmt)
    return nodes


def _dotted(node: cst.BaseExpression) -> str:
    if isinstance(node, cst.Name):
        return node.value
    if isinstance(node, cst.Attribute):
        return f"{_dotted(node.value)}.{node.attr.value}"
    return ""


def parenthesized(expr: cst.BaseExpression) -> cst.BaseExpression:
    """Wraps an expression that binds looser than a call (``lambda``) before calling it."""
    if isinstance(expr, (cst.Lambda, cst.IfExp, cst.BooleanOperation, cst.BinaryOperation)) and not expr.lpar:
        return expr.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])
    return expr


def todo_comment(construct: str, reason: str) -> str:
    return f"{TODO_PREFIX}{construct}: {reason}"


_STATEMENTS = (cst.SimpleStatementLine, cst.BaseCompoundStatement)


class FlaxifyCommand(Codemod, cst.CSTTransformer):
    """Base of every pass: qualified names, shared state and TODO markers.

    ``self.todo(construct, reason)`` marks the innermost statement being
    visited; the marker is added to its leading lines when the statement is
    left, once (a second run finds it already there).
    """

    METADATA_DEPENDENCIES = (QualifiedNameProvider,)
    DESCRIPTION = ""

    def __init__(self, context: CodemodContext) -> None:
        # A plain CSTTransformer: the matcher-decorator dispatch of LibCST's
        # ContextAwareTransformer costs more than the rewrites themselves.
        Codemod.__init__(self, context)
        cst.CSTTransformer.__init__(self)
        self.state: MigrationState = context.scratch[STATE_KEY]
        self._todo_stack: list[list[str]] = []
        self._import_table: dict[str, str] | None = None
        self._wrapper: MetadataWrapper | None = None

    def transform_module_impl(self, tree: cst.Module) -> cst.Module:
        return tree.visit(self)

    # -- metadata ---------------------------------------------------------
    # The scope analysis is most of a pass's cost, so it runs only when the pass
    # first needs it, and never for a question the imports already answer:
    #
    # - LibCST's QualifiedNameProvider walks the whole tree once more after the
    #   scope analysis only to attach a lazy ``scope.get_qualified_names_for(node)``
    #   to every node. A pass that declares it resolves ScopeProvider instead, and
    #   get_metadata makes that same call on demand: same names, one walk fewer.
    # - ``haiku_name`` answers None without the analysis for a name whose leftmost
    #   part no import of Haiku binds (see ``_may_name_haiku``).
    _DEPENDENCIES: dict[type, frozenset[ProviderT]] = {}

    @classmethod
    def get_inherited_dependencies(cls) -> frozenset[ProviderT]:
        found = FlaxifyCommand._DEPENDENCIES.get(cls)
        if found is None:
            declared = {p for c in cls.__mro__ if issubclass(c, MetadataDependent) for p in c.METADATA_DEPENDENCIES}
            found = frozenset(ScopeProvider if p is QualifiedNameProvider else p for p in declared)
            FlaxifyCommand._DEPENDENCIES[cls] = found
        return found

    def transform_module(self, tree: cst.Module) -> cst.Module:
        """``Codemod.transform_module`` with the metadata resolved on first use.

        LibCST runs a pass over a private deep copy of ``tree``, because metadata is
        keyed by node object and a rewritten tree may hold one object in two places.
        No pass keeps nodes across passes, so when every node object is distinct the
        copy would be an exact twin: the pass then runs over ``tree`` itself.

        A pass that changes nothing hands back the tree it was given (not its
        rebuilt twin), so the next pass finds that tree's analysis already made.
        """
        analysed = self.context.scratch.get(ANALYSED_KEY)
        if analysed is not None and analysed.module is tree:
            wrapper = analysed  # MetadataWrapper caches what it resolved
        else:
            wrapper = MetadataWrapper(tree, unsafe_skip_copy=not shares_nodes(tree))
        outer = self.context
        self.context = replace(outer, wrapper=wrapper)
        self._wrapper = wrapper
        try:
            result = self.transform_module_impl(wrapper.module)
        finally:
            self.context = outer
            self._wrapper = None
            self.metadata = {}
        if result.deep_equals(wrapper.module):
            outer.scratch[ANALYSED_KEY] = wrapper
            return wrapper.module
        return result

    def get_metadata(self, key, node, default=_UNDEFINED_DEFAULT):  # type: ignore[no-untyped-def,override]
        """LibCST's ``get_metadata``, with QualifiedNameProvider answered from the scope.

        A node without a scope (formatting nodes, nodes built during this pass)
        has no qualified names: ``default``, which every caller passes as ``set()``.
        """
        if not self.metadata and self._wrapper is not None:
            self.metadata = dict(self._wrapper.resolve_many(self.get_inherited_dependencies()))
        if key is QualifiedNameProvider:
            scope = self.metadata[ScopeProvider].get(node)
            if scope is not None:
                return scope.get_qualified_names_for(node)
            return set() if default is _UNDEFINED_DEFAULT else default
        return super().get_metadata(key, node, default)

    @cached_property
    def _haiku_heads(self) -> frozenset[str] | None:
        """Leftmost names that may resolve into Haiku; None when any name may."""
        # A def or class named haiku: LibCST names everything bound inside it haiku.<...>.
        scopes = (s for s in walk_statements(self.module) if isinstance(s, (cst.FunctionDef, cst.ClassDef)))
        if any(scope.name.value == "haiku" for scope in scopes):
            return None
        bound = {local for local, name in self._imports().items() if name == "haiku" or name.startswith("haiku.")}
        return frozenset({"haiku", *bound})

    def _may_name_haiku(self, node: cst.CSTNode) -> bool:
        """False when no qualified name of ``node`` can start with ``haiku``.

        LibCST names a node after the assignments of its leftmost name (through
        ``.attr``, calls and subscripts): an import gives the imported path, any
        other binding the path of its scope plus the name. So ``haiku...`` comes
        only from a leftmost name bound by an import of Haiku, the name ``haiku``
        itself, or a binding inside a ``def haiku`` / ``class haiku`` (then every
        name may, and the analysis decides).
        """
        heads = self._haiku_heads
        if heads is None:
            return True
        full = get_full_name_for_node(node)
        return full is not None and full.partition(".")[0] in self._haiku_heads

    @classmethod
    def wanted(cls, source: bytes, state: MigrationState) -> bool:
        """Cheap test whether this pass can change anything (each pass costs a scope analysis)."""
        return True

    # -- visiting -----------------------------------------------------------
    # LibCST looks up a ``visit_<Node>_<attribute>`` and a ``leave_<Node>_<attribute>``
    # method for every child field of every node; a pass that defines none skips both.
    def on_visit_attribute(self, node: cst.CSTNode, attribute: str) -> None:
        if _has_attribute_hooks(type(self)):
            super().on_visit_attribute(node, attribute)

    def on_leave_attribute(self, original_node: cst.CSTNode, attribute: str) -> None:
        if _has_attribute_hooks(type(self)):
            super().on_leave_attribute(original_node, attribute)

    # -- names ------------------------------------------------------------
    def haiku_name(self, node: cst.CSTNode) -> str | None:
        """``"haiku.Linear"`` for ``hk.Linear`` (any import spelling), else None."""
        if not isinstance(node, (cst.Name, cst.Attribute)):
            return None  # a call or subscript is not itself a Haiku name
        if not self._may_name_haiku(node):
            return None
        for qualified in self.get_metadata(QualifiedNameProvider, node, set()):
            if qualified.name == "haiku" or qualified.name.startswith("haiku."):
                return qualified.name
        return None

    def resolve_spelling(self, node: cst.CSTNode) -> str | None:
        """Qualified name of a (possibly rewritten) dotted name, from the file's imports.

        Rewritten subtrees carry no metadata, so this reads the spelling against
        the import table instead: with ``import haiku as hk``, ``hk.pad.same`` is
        ``haiku.pad.same``. Names the imports do not bind resolve to None.
        """
        if isinstance(node, cst.Name) and node.value in self.state.initializer_names:
            return BOUND_INITIALIZER  # its binding is rewritten where it stands
        dotted = _dotted(node) if isinstance(node, (cst.Name, cst.Attribute)) else ""
        head, _, rest = dotted.partition(".")
        bound = self._imports().get(head)
        if not dotted or bound is None:
            return None
        return f"{bound}.{rest}" if rest else bound

    def _imports(self) -> dict[str, str]:
        if self._import_table is None:
            self._import_table = import_table(self.module)
        return self._import_table

    def is_haiku_module_class(self, qualname: str | None) -> bool:
        if qualname is None or not qualname.startswith("haiku."):
            return False
        last = qualname.rsplit(".", 1)[-1]
        return last[:1].isupper() and last not in NOT_MODULES and ".initializers." not in qualname

    def local_name(self, node: cst.CSTNode) -> str | None:
        """The local class name a call refers to, if it is a converted module class."""
        if isinstance(node, cst.Name) and node.value in self.state.module_classes:
            return node.value
        return None

    def need_import(self, spec: ImportSpec) -> None:
        AddImportsVisitor.add_needed_import(self.context, spec.module, spec.obj, spec.asname)

    def need_nn(self) -> None:
        self.need_import(ImportSpec("flax.linen", None, None if self.state.nn == "linen" else self.state.nn))

    def helper_conflict(self, qualname: str) -> str | None:
        """Why the exact helper behind ``qualname`` cannot be used here, if it cannot."""
        found = helper_class(qualname, nn=self.state.nn, jnp=self.state.jnp)
        if found is None:
            return None
        tail = qualname.rsplit(".", 1)[-1]
        names = {found[0], *(d for d in HELPER_DEPENDENCIES.get(tail, ()))}
        clash = sorted(names & self.state.user_names)
        if not clash:
            return None
        return (
            f"the exact rewrite emits a helper named {clash[0]}, and this file defines its own {clash[0]};"
            " rename yours and run flaxify migrate again"
        )

    def apply_rewrite(self, result: Rewrite | Unsupported, qualname: str, fallback: cst.BaseExpression) -> cst.BaseExpression:
        """The rewritten expression with its imports scheduled, or ``fallback`` under a TODO."""
        construct = "hk." + qualname.removeprefix("haiku.")
        conflict = self.helper_conflict(qualname) if isinstance(result, Rewrite) else None
        if conflict is not None:
            result = Unsupported(conflict)
        if isinstance(result, Unsupported):
            self.todo(construct, result.reason)
            return fallback
        if f"{self.state.nn}." in cst.Module([]).code_for_node(result.expr):
            self.need_nn()  # not for rewrites to plain JAX or emitted plain functions
        self.note_rewrite(qualname, result.expr)
        for spec in result.imports:
            self.need_import(spec)
        if result.note is not None:
            self.todo(construct, result.note)
        return result.expr

    def note_rewrite(self, qualname: str, expr: cst.CSTNode | None = None) -> None:
        """Records what a successful rewrite needs besides imports.

        With ``expr``, the helper is recorded only if the rewrite names it
        (``hk.DepthwiseConv2D(m, k)(x)`` becomes ``nn.Conv``, not the helper).
        """
        found = helper_class(qualname)
        if found is not None and (expr is None or _names(expr, found[0])):
            self.state.helper_classes.add(qualname)
            tail = qualname.rsplit(".", 1)[-1]
            self.state.helper_classes.update(f"haiku.{dep}" for dep in HELPER_DEPENDENCIES.get(tail, ()))

    def need_jnp(self) -> None:
        self.need_import(ImportSpec("jax.numpy", None, self.state.jnp))

    def nn_attr(self, attr: str) -> cst.Attribute:
        self.need_nn()
        return cst.Attribute(cst.Name(self.state.nn), cst.Name(attr))

    # -- TODO markers -----------------------------------------------------
    def todo(self, construct: str, reason: str) -> None:
        if self._todo_stack:
            text = todo_comment(construct, reason)
            if text not in self._todo_stack[-1]:
                self._todo_stack[-1].append(text)

    def on_visit(self, node: cst.CSTNode) -> bool:
        statement = _is_statement(type(node))
        if statement:
            self._todo_stack.append([])
        descend = super().on_visit(node)
        # A statement already marked TODO (by an earlier pass or an earlier run)
        # is left exactly as it is: this is what makes a second run a no-op.
        return descend and not (statement and has_todo(node))

    def on_leave(self, original_node, updated_node):  # type: ignore[no-untyped-def]
        result = super().on_leave(original_node, updated_node)
        if _is_statement(type(original_node)):
            comments = self._todo_stack.pop()
            if comments:
                result = add_comments(result, comments)
        return result


@cache
def _is_statement(cls: type) -> bool:
    """``isinstance(node, _STATEMENTS)`` by type: the ABC check per node is measurable."""
    return issubclass(cls, _STATEMENTS)


@cache
def _is_node(cls: type) -> bool:
    return issubclass(cls, cst.CSTNode)


def shares_nodes(tree: cst.CSTNode) -> bool:
    """True when one node object sits at two places in ``tree`` (a walk over the same
    fields ``deep_clone`` copies, without building nodes)."""
    seen: set[int] = set()
    stack: list[cst.CSTNode] = [tree]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            return True
        seen.add(id(node))
        for name in _node_fields(type(node)):
            value = getattr(node, name)
            kind = type(value)
            if _is_node(kind):
                stack.append(value)
            elif kind not in (str, bytes) and hasattr(value, "__iter__"):  # as deep_clone iterates
                stack.extend(item for item in value if _is_node(type(item)))
    return False


@cache
def _node_fields(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls) if not f.name.startswith("_"))  # as deep_clone


@cache
def _has_attribute_hooks(cls: type) -> bool:
    """True when ``cls`` defines a LibCST attribute hook such as ``visit_Call_func``.

    LibCST's own base classes define every hook as a no-op stub; those do not count.
    """
    ours = (c for c in cls.__mro__ if not c.__module__.startswith("libcst"))
    return any(_ATTRIBUTE_HOOK.match(name) for c in ours for name in vars(c))


def _names(node: cst.CSTNode, name: str) -> bool:
    """True when ``name`` appears as a ``Name`` anywhere in ``node``."""
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, cst.Name) and current.value == name:
            return True
        stack.extend(current.children)
    return False


def has_todo(node: cst.CSTNode) -> bool:
    """True when a flaxify TODO comment sits directly above the statement."""
    lines = getattr(node, "leading_lines", ())
    return any(line.comment is not None and line.comment.value.startswith(TODO_PREFIX) for line in lines)


def add_comments(result, comments: list[str]):  # type: ignore[no-untyped-def]
    """Adds comment lines above a statement (or the first of a flattened group)."""
    if isinstance(result, cst.FlattenSentinel):
        nodes = list(result.nodes)
        if nodes:
            nodes[0] = add_comments(nodes[0], comments)
        return cst.FlattenSentinel(nodes)
    if not isinstance(result, _STATEMENTS):
        return result
    present = {line.comment.value for line in result.leading_lines if line.comment is not None}
    new = [cst.EmptyLine(comment=cst.Comment(c)) for c in comments if c not in present]
    if not new:
        return result
    return result.with_changes(leading_lines=[*result.leading_lines, *new])
