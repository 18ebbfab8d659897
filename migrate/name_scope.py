"""``with hk.name_scope("s"):`` -> the block run by a ``NameScope`` submodule named ``"s"``.

Haiku's name scope (``haiku/_src/module.py::NameScope``) is a module named
``s`` whose method is simulated while the block runs: the modules built in the
block are named inside it (``parent/s/linear``, counters restarting there) and
``hk.get_parameter`` lands in the ``parent/s`` bucket. Linen has no scope
context manager, and a ``/`` in a Linen name stays one flat key
(``nn.Dense(name="s/linear")`` gives ``params["s/linear"]``). The faithful form
is a submodule named like the scope that runs the block::

    with hk.name_scope("s"):                  def _name_scope_s(scope):
      lin = hk.Linear(4)                          lin = nn.Dense(4, ..., name="linear")
      w = hk.get_parameter("w", [], init=i)  ->    w = scope.param("w", i, [])
    y = lin(x) * w                                return lin, w

                                              lin, w = NameScope(_name_scope_s, name="s")()
                                              y = lin(x) * w

``NameScope`` is an emitted helper (``lifted.py``). The module pass names the
block's modules with fresh counters (a minimal hook in ``modules.py``); this
pass, which runs after it, moves the block into the closure and points the
variable calls (``self.param`` / ``self.variable`` / ...) at the scope. A
module built in the block and called after it keeps its place under ``s``, as
in Haiku. A second scope of the same name in one method is ``s_1``, as Haiku
names it (scope modules share the counters of the other modules of their
scope).

``"a/b"`` is a scope per part, as Haiku nests them (``parent/a/b/linear``; a
later ``"a/c"`` is ``a_1/c``): the closure runs in ``NameScope(..., name="b")``
built inside ``NameScope(..., name="a")``. A scope block directly inside
another becomes a closure inside the outer one, with its own counters.
Branches and loops stay as they were inside the closure; which names it takes
and returns comes from definite-assignment analysis (``closure_flow.py``):
inputs are the names it reads before it surely binds them, outputs the names it
surely binds (or binds on some path and are read after it: those are passed in
too, keeping their value on the other paths).

Left under the TODO ``leftovers.py`` writes (``unsupported.py`` gives this
recipe) when the rewrite could change meaning: a block outside the methods of a
converted module (or nested in a branch or loop), a name that is not a literal
of identifiers or is numbered (``s_1`` moves Haiku's counter), a name shared
with a module of the same scope, or entered in a branch or loop before,
``method_name=`` other than ``"__call__"``, ``as``; ``return``, ``yield``, ``global``/``nonlocal``,
``del``, imports, ``try``/``match``, nested functions, lambdas or ``:=`` in the
block; an input not surely bound before the block; or a method whose class
defines ``NameScope`` itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import libcst as cst

from flaxify.migrate.base import FlaxifyCommand, MigrationState, has_todo
from flaxify.migrate.closure_flow import Summary, block_flow, definite_after
from flaxify.migrate.layers_common import free_name, literal, walk
from flaxify.migrate.naming import name_and_number
from flaxify.migrate.rewrite import ImportSpec

NAME_SCOPES = frozenset({"haiku.name_scope", "haiku.experimental.name_scope"})
# Variable APIs that belong to the scope's module in Haiku ('parent/s' bucket).
_SCOPED_CALLS = frozenset({"param", "variable", "put_variable", "get_variable", "has_variable"})

NAME_SCOPE_SOURCE = '''class NameScope({nn}.Module):
    """Haiku's hk.name_scope: runs a block of module code with this submodule as its scope (its modules and parameters land under its name)."""

    fn: Any

    @{nn}.compact
    def __call__(self, *args):
        return self.fn(self, *args)
'''

HELPERS = {"name_scope": ("NameScope", NAME_SCOPE_SOURCE, (ImportSpec("typing", "Any", None),))}


def scope_name(node: cst.With, haiku_name) -> str | None:  # type: ignore[no-untyped-def]
    """``"s"`` / ``"a/b"`` for ``with hk.name_scope("a/b"):`` (one item, no ``as``, each part an identifier,
    ``method_name`` left at ``"__call__"``), else None."""
    if len(node.items) != 1 or node.items[0].asname is not None or node.asynchronous:
        return None
    call = node.items[0].item
    if not isinstance(call, cst.Call) or haiku_name(call.func) not in NAME_SCOPES:
        return None
    if not call.args or call.args[0].keyword is not None or call.args[0].star:
        return None
    # method_name= only changes how Haiku names the scope's submodules when it is not the default.
    options = call.args[1:]
    if any(a.keyword is None or a.keyword.value != "method_name" or literal(a.value) != "__call__" for a in options):
        return None
    name = literal(call.args[0].value)
    if not isinstance(name, str) or not all(part.isidentifier() for part in name.split("/")):
        return None
    return name


@dataclass(frozen=True)
class _Plan:
    """How one scope block becomes a closure run by nested ``NameScope`` submodules."""

    parts: tuple[str, ...]  # Flax names, outermost first: "a/b" (the second "a") -> ("a_1", "b")
    closure: str
    scope: str  # the closure's scope parameter
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


class NameScopesCommand(FlaxifyCommand):
    """Moves ``hk.name_scope`` blocks into closures run by a ``NameScope`` submodule."""

    DESCRIPTION = "Turns hk.name_scope blocks into NameScope submodules."

    @classmethod
    def wanted(cls, source: bytes, state: MigrationState) -> bool:
        return b"name_scope" in source

    def __init__(self, context):  # type: ignore[no-untyped-def]
        super().__init__(context)
        self._plans: dict[int, _Plan] = {}  # id(With) -> plan
        self._methods: set[int] = set()  # ids of the methods of converted module classes
        self._firsts: set[int] = set()  # ids of the first statements of blocks (no blank line above the closure)

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        converted = node.name.value in self.state.module_classes or node.name.value in self.state.wrapper_classes
        if converted and isinstance(node.body, cst.IndentedBlock):
            self._methods.update(id(s) for s in node.body.body if isinstance(s, cst.FunctionDef))

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        # Only methods of converted modules: NameScope must be built inside a Linen module's method.
        if id(node) not in self._methods or "NameScope" in self.state.user_names or not isinstance(node.body, cst.IndentedBlock):
            return
        body = node.body.body
        self._firsts.add(id(body[0]))
        taken = {n.value for n in walk(node) if isinstance(n, cst.Name)}
        params = node.params
        every = [*params.posonly_params, *params.params, *params.kwonly_params]
        every += [p for p in (params.star_arg, params.star_kwarg) if isinstance(p, cst.Param)]
        available = frozenset(p.name.value for p in every)  # names surely bound before each statement
        counter = _Counter(_level_names(body, self._is_scope), self._unsure_bases(body))
        for index, stmt in enumerate(body):
            if self._is_scope(stmt):
                first = counter.number(stmt, self.haiku_name)
                pending: dict[int, _Plan] = {}
                after = _names(body[index + 1 :])
                if first is not None and not has_todo(stmt) and self._plan(stmt, first, available, after, taken, pending):
                    self._plans.update(pending)  # nested blocks only with their enclosing one
            available = definite_after([stmt], available)

    # -- analysis -------------------------------------------------------------------
    def _is_scope(self, stmt: cst.CSTNode) -> bool:
        """A ``with`` entering an ``hk.name_scope`` (in any of its items)."""
        if not isinstance(stmt, cst.With):
            return False
        return any(isinstance(i.item, cst.Call) and self.haiku_name(i.item.func) in NAME_SCOPES for i in stmt.items)

    def _unsure_bases(self, body: Sequence[cst.BaseStatement]) -> set[str] | None:
        """First parts of the scopes entered inside branches or loops: their count, and so later ones', depends on run time.

        None when one of them is not a literal name (any later scope may share its counter).
        """
        bases: set[str] = set()
        for stmt in body:
            if self._is_scope(stmt):
                continue
            for node in walk(stmt):
                if self._is_scope(node):
                    first = _first_part(node)  # type: ignore[arg-type]
                    if first is None:
                        return None
                    bases.add(name_and_number(first)[0])
        return bases

    def _plan(
        self,
        node: cst.With,
        first: str,
        available: frozenset[str],
        after: frozenset[str],
        taken: set[str],
        pending: dict[int, _Plan],
    ) -> Summary | None:
        """Plans ``node`` (and the scope blocks in it) into ``pending``; what it reads and binds, or None to refuse.

        ``available``: names surely bound where the block starts; ``after``: names
        read after it (a name it binds only on some paths must not be one).
        """
        name = scope_name(node, self.haiku_name)
        if name is None or not isinstance(node.body, cst.IndentedBlock):
            return None
        body = node.body.body
        self._firsts.add(id(body[0]))
        counter = _Counter(_level_names(body, self._is_scope), set())

        def nested(stmt: cst.BaseStatement, definite: frozenset[str], rest: Sequence[cst.BaseStatement]) -> Summary | None:
            inner = counter.number(stmt, self.haiku_name)  # type: ignore[arg-type]
            if inner is None or has_todo(stmt):
                return None
            return self._plan(stmt, inner, available | definite, after | _names(rest), taken, pending)  # type: ignore[arg-type]

        flow = block_flow(body, nested, self._is_scope)
        if flow is None:
            return None
        # A name bound on some paths only and read after the block keeps its earlier value on the
        # others: it is passed in too. The closure reads its inputs when it is called, where the
        # block may have read them on some path only, so each must be bound for sure before it.
        conditional = [n for n in flow.bound if n not in flow.definite and n in after]
        inputs = [*flow.inputs(), *(n for n in conditional if n not in flow.early)]
        if any(n not in available for n in inputs):
            return None
        outputs = tuple(n for n in flow.bound if n in flow.definite or n in inputs)
        parts = (first, *name.split("/")[1:])
        closure = free_name(f"_name_scope_{'_'.join(parts)}", *[cst.Name(t) for t in taken])
        taken.add(closure)
        scope = free_name("scope", node.body)
        pending[id(node)] = _Plan(parts, closure, scope, tuple(inputs), outputs)
        return Summary(reads=(*flow.early, *inputs), binds=outputs)

    # -- rewriting -------------------------------------------------------------------
    def leave_With(self, original_node: cst.With, updated_node: cst.With):  # type: ignore[no-untyped-def]
        plan = self._plans.get(id(original_node))
        if plan is None:
            return updated_node
        body = [stmt.visit(_ToScope(plan.scope)) for stmt in updated_node.body.body]  # type: ignore[union-attr]
        if plan.outputs:
            body.append(cst.parse_statement(f"return {', '.join(plan.outputs)}"))
        fn = cst.FunctionDef(
            name=cst.Name(plan.closure),
            params=cst.Parameters([cst.Param(cst.Name(p)) for p in (plan.scope, *plan.inputs)]),
            body=cst.IndentedBlock(body),  # type: ignore[arg-type]
            leading_lines=[*updated_node.leading_lines, *([] if id(original_node) in self._firsts else [cst.EmptyLine(indent=False)])],
        )
        args = ", ".join(plan.inputs)
        run = f'NameScope({plan.closure}, name="{plan.parts[-1]}")({args})'
        # "a/b": Haiku nests a scope per part; each outer NameScope builds the next inside its own call.
        unused = free_name("_", *[cst.Name(n) for n in plan.inputs])
        for part in reversed(plan.parts[:-1]):
            run = f'NameScope(lambda {", ".join([unused, *plan.inputs])}: {run}, name="{part}")({args})'
        call = cst.parse_statement(f"{', '.join(plan.outputs)} = {run}" if plan.outputs else run)
        call = call.with_changes(leading_lines=[cst.EmptyLine(indent=False)])
        self.state.helper_classes.add("haiku.name_scope")
        self.need_nn()
        return cst.FlattenSentinel([fn, call])


class _Counter:
    """Haiku's numbering of the scopes entered in one scope: a repeated ``s`` is ``s_1``.

    Scope modules share their counters with the other modules built there, so a
    scope whose first part is the base of one of them, or that is numbered
    itself (``s_1``), or that a branch or loop may enter first, is refused.
    """

    def __init__(self, level_names: set[str], unsure: set[str] | None) -> None:
        self.bases = {name_and_number(n)[0] for n in level_names}
        self.unsure = unsure
        self.seen: dict[str, int] = {}

    def number(self, node: cst.With, haiku_name) -> str | None:  # type: ignore[no-untyped-def]
        """The Flax name of the scope's first part, None when it cannot be told statically."""
        first = _first_part(node)
        if first is None:
            self.unsure = None  # any later scope may share this one's counter
            return None
        base, number = name_and_number(first)
        count = self.seen.get(base, 0)
        self.seen[base] = count + 1
        if number is not None and self.unsure is not None:
            self.unsure = self.unsure | {base}  # an explicit number moves the counter
        if self.unsure is None or base in self.unsure or number is not None or base in self.bases:
            return None
        if scope_name(node, haiku_name) is None:
            return None
        return f"{base}_{count}" if count else base


def _first_part(node: cst.With) -> str | None:
    """``"a"`` for a scope entered as ``"a/b"`` (a literal first argument), else None."""
    call = node.items[0].item if len(node.items) == 1 else None
    if not isinstance(call, cst.Call) or not call.args:
        return None
    name = literal(call.args[0].value)
    return name.split("/")[0] if isinstance(name, str) else None


def _level_names(body: Sequence[cst.BaseStatement], is_scope: Callable[[cst.CSTNode], bool]) -> set[str]:
    """The ``name="..."`` literals of the modules built in one scope (not in the scope blocks within it)."""
    names: set[str] = set()
    stack: list[cst.CSTNode] = list(body)
    while stack:
        node = stack.pop()
        if is_scope(node):
            continue
        if isinstance(node, cst.Arg) and node.keyword is not None and node.keyword.value == "name":
            value = literal(node.value)
            if isinstance(value, str):
                names.add(value)
        stack.extend(node.children)
    return names


def _names(stmts: Sequence[cst.CSTNode]) -> frozenset[str]:
    """Every name spelled in ``stmts`` (a superset of what they read)."""
    return frozenset(n.value for stmt in stmts for n in walk(stmt) if isinstance(n, cst.Name))


class _ToScope(cst.CSTTransformer):
    """``self.param(...)`` -> ``scope.param(...)`` (Haiku puts the block's own variables in the scope's bucket)."""

    def __init__(self, scope: str) -> None:
        super().__init__()
        self.scope = scope

    def leave_Attribute(self, original_node: cst.Attribute, updated_node: cst.Attribute) -> cst.BaseExpression:
        value = updated_node.value
        if isinstance(value, cst.Name) and value.value == "self" and updated_node.attr.value in _SCOPED_CALLS:
            return updated_node.with_changes(value=cst.Name(self.scope))
        return updated_node
