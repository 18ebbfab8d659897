"""Parameters a multi_transform root creates in another method, made in ``setup()``.

Haiku puts a parameter that a method other than ``__call__`` creates
(``latents = hk.get_parameter("latents", [n, d], init=...)`` in a Perceiver's
``encode``) in the module's own bucket, ``perceiver/latents``; its submodules
get the method's ``~encode/`` scope. The method becomes Linen's
``@nn.compact_name_scope`` (modules.py), which may build submodules but not
call ``self.param`` ("Parameters must be initialized in `setup()` or in a
method wrapped in `@compact`"). ``setup()`` may, and it names the parameter
``latents`` on the module, as Haiku does::

    def setup(self):
        self.latents = self.param("latents", <init>, [self.num_latents, self.latent_dim])

    @nn.compact_name_scope
    def encode(self, inputs):
        latents = self.latents

That is exact only when the parameter's name, shape, dtype and initializer do
not depend on anything the method computes: every ``hk.get_parameter`` of the
method is the whole value of a top-level ``name = hk.get_parameter(...)``
statement whose arguments read no parameter or local of the method (fields as
``self.x``, constants and module-level names are fine), with a literal name
that is an identifier the class uses for nothing else. Otherwise the method
keeps its TODO. (One difference remains, named in the README: ``setup()``
creates the parameter whenever the module is initialised, where Haiku creates
it only if ``init`` calls the method; a multi_transform ``init`` that calls
every method, as its template usually does, sees no difference.)
"""

from __future__ import annotations

from collections.abc import Callable

import libcst as cst

from flaxify.migrate.layers_common import walk

HaikuName = Callable[[cst.CSTNode], "str | None"]
_STATE_CALLS = ("haiku.get_state", "haiku.set_state")


def hoistable(method: cst.FunctionDef, klass: cst.ClassDef, haiku_name: HaikuName) -> dict[int, str] | None:
    """``id(get_parameter call) -> attribute`` when every variable ``method`` creates can move to ``setup()``.

    None when one cannot (or when the method creates state, which stays its TODO).
    """
    calls = [n for n in walk(method) if isinstance(n, cst.Call)]
    if any(haiku_name(c.func) in _STATE_CALLS for c in calls):
        return None
    wanted = {id(c) for c in calls if haiku_name(c.func) == "haiku.get_parameter"}
    local = _bound_names(method)
    taken = _class_attributes(klass)
    hoisted: dict[int, str] = {}
    for statement in method.body.body:
        call = _assigned_call(statement)
        if call is None or id(call) not in wanted:
            continue
        name = _literal_name(call)
        if name is None or name in taken or name in hoisted.values() or _reads_any(call, local):
            return None
        hoisted[id(call)] = name
    return hoisted if set(hoisted) == wanted else None


def setup_line(attribute: str, param: cst.Call) -> cst.SimpleStatementLine:
    """``self.<attribute> = <param>`` for ``setup()``."""
    target = cst.Attribute(cst.Name("self"), cst.Name(attribute))
    return cst.SimpleStatementLine([cst.Assign([cst.AssignTarget(target)], param)])


def _assigned_call(statement: cst.BaseStatement) -> cst.Call | None:
    """The call of a ``name = call(...)`` statement line, else None."""
    if not isinstance(statement, cst.SimpleStatementLine) or len(statement.body) != 1:
        return None
    assign = statement.body[0]
    if not isinstance(assign, cst.Assign) or len(assign.targets) != 1 or not isinstance(assign.targets[0].target, cst.Name):
        return None
    return assign.value if isinstance(assign.value, cst.Call) else None


def _literal_name(call: cst.Call) -> str | None:
    """The parameter name (first positional or ``name=``) when it is a plain string literal identifier."""
    arg = next((a for a in call.args if a.keyword is not None and a.keyword.value == "name"), None)
    if arg is None and call.args and call.args[0].keyword is None:
        arg = call.args[0]
    if arg is None or not isinstance(arg.value, cst.SimpleString):
        return None
    value = arg.value.evaluated_value
    return value if isinstance(value, str) and value.isidentifier() else None


def _bound_names(method: cst.FunctionDef) -> set[str]:
    """Every name the method binds: its parameters and anything assigned, looped over or defined in it."""
    names = {p.name.value for p in walk(method.params) if isinstance(p, cst.Param)}
    for node in walk(method.body):
        if isinstance(node, cst.AssignTarget | cst.AnnAssign | cst.AugAssign | cst.For | cst.CompFor):
            names |= {n.value for n in walk(node.target) if isinstance(n, cst.Name)}
        elif isinstance(node, cst.AsName):
            names |= {n.value for n in walk(node.name) if isinstance(n, cst.Name)}
        elif isinstance(node, cst.FunctionDef | cst.ClassDef):
            names.add(node.name.value)
        elif isinstance(node, cst.NamedExpr):
            names |= {n.value for n in walk(node.target) if isinstance(n, cst.Name)}
    return names - {"self"}


def _reads_any(call: cst.Call, names: set[str]) -> bool:
    """Whether the call's arguments read one of ``names`` (not as an attribute or keyword)."""
    skipped = set()
    for node in walk(call):
        if isinstance(node, cst.Attribute):
            skipped.add(id(node.attr))
        elif isinstance(node, cst.Arg) and node.keyword is not None:
            skipped.add(id(node.keyword))
    return any(isinstance(n, cst.Name) and id(n) not in skipped and n.value in names for n in walk(call))


def _class_attributes(klass: cst.ClassDef) -> set[str]:
    """Names the class already uses on ``self`` or defines in its body (methods, class attributes)."""
    used = {
        n.attr.value
        for n in walk(klass)
        if isinstance(n, cst.Attribute) and isinstance(n.value, cst.Name) and n.value.value == "self"
    }
    for item in klass.body.body:
        if isinstance(item, cst.FunctionDef):
            used.add(item.name.value)
        elif isinstance(item, cst.SimpleStatementLine):
            for small in item.body:
                targets = small.targets if isinstance(small, cst.Assign) else [small] if isinstance(small, cst.AnnAssign) else []
                used |= {t.target.value for t in targets if isinstance(t.target, cst.Name)}
    return used
