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
names it.

Left under the TODO ``leftovers.py`` writes (``unsupported.py`` gives this
recipe) when the rewrite could change meaning: a block outside the methods of
a converted module (or nested in a statement), a name with ``/`` or not a literal, ``method_name=``, ``as``, a block with compound statements, ``return``,
augmented assignments or ``global``/``nonlocal``, a name the block reads before
it assigns it (the closure would make it local), or a method whose class
defines ``NameScope`` itself.
"""

from __future__ import annotations


import libcst as cst
from flaxify.migrate.base import FlaxifyCommand, MigrationState, has_todo
from flaxify.migrate.layers_common import free_name, literal, walk
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
    """``"s"`` for ``with hk.name_scope("s"):`` (one item, no ``as``, a literal name without ``/``), else None."""
    if len(node.items) != 1 or node.items[0].asname is not None or node.asynchronous:
        return None
    call = node.items[0].item
    if not isinstance(call, cst.Call) or haiku_name(call.func) not in NAME_SCOPES:
        return None
    if len(call.args) != 1 or call.args[0].keyword is not None or call.args[0].star:
        return None
    name = literal(call.args[0].value)
    return name if isinstance(name, str) and name.isidentifier() else None


class NameScopesCommand(FlaxifyCommand):
    """Moves ``hk.name_scope`` blocks into closures run by a ``NameScope`` submodule."""

    DESCRIPTION = "Turns hk.name_scope blocks into NameScope submodules."

    @classmethod
    def wanted(cls, source: bytes, state: MigrationState) -> bool:
        return b"name_scope" in source

    def __init__(self, context):  # type: ignore[no-untyped-def]
        super().__init__(context)
        # id(With) -> (Flax name, closure name, (inputs, outputs))
        self._plans: dict[int, tuple[str, str, tuple[list[str], list[str]]]] = {}
        self._methods: set[int] = set()  # ids of the methods of converted module classes

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        converted = node.name.value in self.state.module_classes or node.name.value in self.state.wrapper_classes
        if converted and isinstance(node.body, cst.IndentedBlock):
            self._methods.update(id(s) for s in node.body.body if isinstance(s, cst.FunctionDef))

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        # Only methods of converted modules: NameScope must be built inside a Linen module's method.
        if id(node) not in self._methods or "NameScope" in self.state.user_names or not isinstance(node.body, cst.IndentedBlock):
            return
        seen: dict[str, int] = {}
        taken = {n.value for n in walk(node) if isinstance(n, cst.Name)}
        for stmt in node.body.body:
            if not isinstance(stmt, cst.With) or has_todo(stmt):
                continue
            name = scope_name(stmt, self.haiku_name)
            if name is None:
                continue
            count = seen.get(name, 0)
            seen[name] = count + 1  # a scope left as it was still takes its Haiku number
            names = _outputs(stmt)
            if names is None:
                continue
            flax_name = f"{name}_{count}" if count else name
            closure = free_name(f"_name_scope_{flax_name}", *[cst.Name(t) for t in taken])
            taken.add(closure)
            self._plans[id(stmt)] = (flax_name, closure, names)

    def leave_With(self, original_node: cst.With, updated_node: cst.With):  # type: ignore[no-untyped-def]
        plan = self._plans.get(id(original_node))
        if plan is None:
            return updated_node
        flax_name, closure, (inputs, outputs) = plan
        scope = free_name("scope", updated_node.body)
        body = [stmt.visit(_ToScope(scope)) for stmt in updated_node.body.body]  # type: ignore[union-attr]
        if outputs:
            body.append(cst.parse_statement(f"return {', '.join(outputs)}"))
        fn = cst.FunctionDef(
            name=cst.Name(closure),
            params=cst.Parameters([cst.Param(cst.Name(p)) for p in (scope, *inputs)]),
            body=cst.IndentedBlock(body),  # type: ignore[arg-type]
            leading_lines=[*updated_node.leading_lines, cst.EmptyLine(indent=False)],
        )
        run = f'NameScope({closure}, name="{flax_name}")({", ".join(inputs)})'
        call = cst.parse_statement(f"{', '.join(outputs)} = {run}" if outputs else run)
        call = call.with_changes(leading_lines=[cst.EmptyLine(indent=False)])
        self.state.helper_classes.add("haiku.name_scope")
        self.need_nn()
        return cst.FlattenSentinel([fn, call])


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


def _outputs(node: cst.With) -> tuple[list[str], list[str]] | None:
    """``(inputs, outputs)`` of the block as a closure, or None when it cannot become one.

    Outputs are the names it assigns, in order; inputs those it reads before assigning.
    """
    if not isinstance(node.body, cst.IndentedBlock):
        return None
    smalls: list[cst.BaseSmallStatement] = []
    for stmt in node.body.body:
        if not isinstance(stmt, cst.SimpleStatementLine):
            return None
        smalls += stmt.body
    bound: list[list[str]] = []
    for small in smalls:
        targets = _targets(small) if isinstance(small, (cst.Assign, cst.AnnAssign, cst.Expr, cst.Pass)) else None
        if targets is None or any(isinstance(n, (cst.Lambda, cst.FunctionDef, cst.NamedExpr)) for n in walk(small)):
            return None
        bound.append(targets)
    everything = {name for targets in bound for name in targets}
    assigned: list[str] = []
    inputs: list[str] = []
    for small, targets in zip(smalls, bound, strict=True):
        # A name the block binds is local to the closure throughout: one it reads
        # before binding it (`x = f(x)`) holds the outer value, so it is passed in.
        value = small.value if isinstance(small, (cst.Assign, cst.AnnAssign, cst.Expr)) else None
        reads = [n.value for n in walk(value) if isinstance(n, cst.Name)] if value is not None else []
        for read in reads:
            if read in everything and read not in assigned and read not in inputs:
                inputs.append(read)
        assigned += [t for t in targets if t not in assigned]
    return inputs, assigned


def _targets(small: cst.BaseSmallStatement) -> list[str] | None:
    """Names a small statement binds; None when it binds anything but plain names."""
    if isinstance(small, cst.Assign):
        names: list[str] = []
        for target in small.targets:
            found = _names_of(target.target)
            if found is None:
                return None
            names += found
        return names
    if isinstance(small, cst.AnnAssign):
        return _names_of(small.target)
    return []


def _names_of(node: cst.BaseExpression) -> list[str] | None:
    if isinstance(node, cst.Name):
        return [node.value]
    if isinstance(node, (cst.Tuple, cst.List)):
        names: list[str] = []
        for element in node.elements:
            found = _names_of(element.value)
            if found is None:
                return None
            names += found
        return names
    return None
