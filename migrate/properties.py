"""``@property`` methods that create a Haiku parameter or state entry -> variables made in ``setup()``.

Haiku modules often expose a variable through a property that creates it on
first read (``hk.nets.VectorQuantizer``)::

    @property
    def embeddings(self):
      initializer = hk.initializers.VarianceScaling(distribution="uniform")
      return hk.get_parameter("embeddings", self._embedding_shape, self._dtype, init=initializer)

Linen creates variables only in ``setup()`` or a compact method, so the
property's body moves to the end of ``setup()``, under the module's own scope
and with Haiku's name. A parameter becomes a plain attribute (reads of
``self.embeddings`` are unchanged)::

    def setup(self):
      ...
      initializer = nn.initializers.variance_scaling(1.0, "fan_in", "uniform")
      self.embeddings = self.param("embeddings", initializer, self._embedding_shape, self.dtype)

A state entry (``hk.get_state(..., init=...)``, ``hk.nets.VectorQuantizerEMA``)
becomes a ``self.variable`` kept in a private attribute; the property stays and
returns its ``.value``, and ``hk.set_state(name, v)`` statements write
``self._embeddings.value = v`` (guarded by ``is_initializing()`` like every
``set_state`` on an entry ``get_state`` created, since Haiku's ``init`` returns
the initial state)::

    def setup(self):
      ...
      self._embeddings = self.variable("state", "embeddings", lambda: initializer(self.make_rng("params"), shape, dtype))

    @property
    def embeddings(self):
      return self._embeddings.value

This is exact only when Linen's eager creation in ``setup()`` makes the same
variables as Haiku's creation on first read. The property must therefore be a
plain ``@property`` (locals, then ``return hk.get_parameter(...)`` /
``hk.get_state(...)`` with a literal name and an ``init``), read by
``__call__`` on every path (a top-level statement, before any ``return`` or
``raise``), never read in ``__init__`` (setup() creates it last) and never
assigned; no other call in the class may create the same entry. Otherwise the
method keeps a TODO saying which condition fails.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import libcst as cst
import libcst.matchers as m

from flaxify.migrate import state
from flaxify.migrate.initializers import rewrite_initializer
from flaxify.migrate.layers_common import Resolver, Signature, bind, code, literal, walk
from flaxify.migrate.rewrite import ImportSpec, Rewrite, Unsupported, merge_imports

GET_PARAMETER = Signature("hk.get_parameter", ("name", "shape", "dtype", "init"))
_CREATORS = {"haiku.get_parameter": "param", "haiku.get_state": "state"}
_SELF_ATTR = m.Attribute(m.Name("self"), m.Name())
_CONDITIONAL = (
    cst.If,
    cst.IfExp,
    cst.For,
    cst.While,
    cst.Try,
    cst.With,
    cst.BooleanOperation,
    cst.ListComp,
    cst.SetComp,
    cst.DictComp,
    cst.GeneratorExp,
    cst.Lambda,
    cst.FunctionDef,
    cst.ClassDef,
)

#: Attributes Haiku layers record when they are called and Linen layers never record.
_CALL_TIME_ATTRIBUTES = ("input_size",)


@dataclass(frozen=True)
class VariableProperty:
    """A property that becomes a variable created in ``setup()``."""

    name: str  # the property
    kind: str  # "param" or "state"
    entry: str  # the variable's Haiku (and Linen) name
    attribute: str  # where setup() keeps it: the property's name (param) or a private one (state)


@dataclass(frozen=True)
class SetupCode:
    """What the property contributes to ``setup()`` and what is left of it."""

    statements: tuple[cst.BaseStatement, ...]
    imports: tuple[ImportSpec, ...]
    kept: cst.FunctionDef | None  # the property reading the variable (state), or None (removed)


def scoped_method_reason(method: cst.FunctionDef, generic: str) -> str:
    """Why ``method``, which builds modules or variables inline, stays Haiku: precisely when known.

    (A method that only returns a new module is planned by ``factory_methods.plan_factory`` first.)
    """
    for node in walk(method):
        if isinstance(node, cst.Attribute) and node.attr.value in _CALL_TIME_ATTRIBUTES:
            return (
                f"reads `{code(node)}`, which a Haiku layer records when it is called; Linen layers do not record "
                f"their {node.attr.value} (flaxify reads an hk.Linear's back from its kernel only in a method that "
                "just returns a new module, factory_methods.py): build the new module from sizes you know "
                "(e.g. pass them to the constructor)"
            )
    return generic


def plan_property(
    method: cst.FunctionDef, klass: cst.ClassDef, haiku_name: Callable[[cst.CSTNode], str | None], resolver: Resolver
) -> VariableProperty | str | None:
    """A property creating a variable, as a :class:`VariableProperty`; a reason when it must stay; None if no such property.

    ``haiku_name`` resolves original nodes (metadata); ``resolver`` resolves by spelling.
    """
    if not any(m.matches(d.decorator, m.Name("property")) for d in method.decorators):
        return None
    final = _final_call(method)
    kind = _CREATORS.get(haiku_name(final.func) or "") if final is not None else None
    if kind is None:
        return None  # a property building modules or reading state some other way: the generic TODO
    assert final is not None
    if len(method.decorators) != 1 or not _only_self(method):
        return "a property with other decorators or arguments creates a variable; create it in setup() by hand"
    entry = state.literal_name(final, GET_PARAMETER)
    if entry is None:
        return "the variable's name is not a string literal; create it in setup() with self.param / self.variable"
    attribute = method.name.value if kind == "param" else _private_name(method.name.value, klass)
    prop = VariableProperty(method.name.value, kind, entry, attribute)
    why = _class_conditions(prop, method, klass, haiku_name)
    if why is not None:
        return why
    built = setup_code(prop, method, nn="nn", jnp="jnp", resolver=resolver)
    return built.reason if isinstance(built, Unsupported) else prop


def setup_code(
    prop: VariableProperty, method: cst.FunctionDef, *, nn: str, jnp: str, resolver: Resolver
) -> SetupCode | Unsupported:
    """The ``setup()`` statements for ``prop`` built from ``method`` (already renamed by the pass)."""
    body = list(method.body.body)  # type: ignore[union-attr]
    if body and _is_docstring(body[0]):
        body = body[1:]
    flax_locals: set[str] = set()
    statements: list[cst.BaseStatement] = []
    imports: tuple[ImportSpec, ...] = ()
    for statement in body[:-1]:
        converted = _local(statement, resolver, nn=nn, jnp=jnp)
        if isinstance(converted, Unsupported):
            return converted
        line, name, flax = converted
        statements.append(line.with_changes(leading_lines=()))
        imports = merge_imports(imports, flax.imports if flax else ())
        flax_locals.discard(name)
        if flax is not None:
            flax_locals.add(name)
    call = _final_call(method)
    assert call is not None
    created = _creation(prop, call, flax_locals, resolver, nn=nn, jnp=jnp)
    if isinstance(created, Unsupported):
        return created
    target = cst.AssignTarget(cst.Attribute(cst.Name("self"), cst.Name(prop.attribute)))
    statements.append(cst.SimpleStatementLine([cst.Assign([target], created.expr)]))
    kept = None
    if prop.kind == "state":
        read = cst.parse_statement(f"return self.{prop.attribute}.value")
        kept = method.with_changes(body=method.body.with_changes(body=[read]))
    return SetupCode(tuple(statements), merge_imports(imports, created.imports), kept)


def add_to_setup(body: list[cst.BaseStatement], statements: list[cst.BaseStatement]) -> list[cst.BaseStatement]:
    """``body`` (a Linen class body) with ``statements`` at the end of its ``setup()``, made if missing."""
    for index, item in enumerate(body):
        if isinstance(item, cst.FunctionDef) and item.name.value == "setup":
            block = item.body
            assert isinstance(block, cst.IndentedBlock)
            body[index] = item.with_changes(body=block.with_changes(body=[*block.body, *statements]))
            return body
    first_method = next((i for i, item in enumerate(body) if isinstance(item, cst.FunctionDef)), len(body))
    setup = cst.FunctionDef(
        name=cst.Name("setup"),
        params=cst.Parameters([cst.Param(cst.Name("self"))]),
        body=cst.IndentedBlock(statements),  # type: ignore[arg-type]
        leading_lines=[cst.EmptyLine(indent=False)] if first_method else [],
    )
    rest = body[first_method:]
    if rest and isinstance(rest[0], cst.FunctionDef) and not rest[0].leading_lines:  # a blank line after setup()
        rest[0] = rest[0].with_changes(leading_lines=[cst.EmptyLine(indent=False)])
    return [*body[:first_method], setup, *rest]


def value_write(attribute: str, put_variable: cst.Call) -> cst.Assign:
    """``self.put_variable("state", name, v)`` -> ``self.<attribute>.value = v``."""
    value = put_variable.args[2].value
    target = cst.Attribute(cst.Attribute(cst.Name("self"), cst.Name(attribute)), cst.Name("value"))
    return cst.Assign([cst.AssignTarget(target)], value)


# -- analysis ------------------------------------------------------------------


def _final_call(method: cst.FunctionDef) -> cst.Call | None:
    """The call in ``return <call>`` when the body is locals then that return."""
    body = list(method.body.body) if isinstance(method.body, cst.IndentedBlock) else []
    if body and _is_docstring(body[0]):
        body = body[1:]
    if not body or not all(_is_local_assignment(s) for s in body[:-1]):
        return None
    last = body[-1]
    if m.matches(last, m.SimpleStatementLine([m.Return(m.Call())])):
        return last.body[0].value  # type: ignore[attr-defined,return-value]
    return None


def _is_local_assignment(statement: cst.BaseStatement) -> bool:
    return m.matches(statement, m.SimpleStatementLine([m.Assign(targets=[m.AssignTarget(m.Name())])]))


def _is_docstring(statement: cst.BaseStatement) -> bool:
    return m.matches(statement, m.SimpleStatementLine([m.Expr(m.SimpleString() | m.ConcatenatedString())]))


def _only_self(method: cst.FunctionDef) -> bool:
    params = method.params
    return (
        len(params.params) == 1
        and not params.posonly_params
        and not params.kwonly_params
        and not isinstance(params.star_arg, cst.Param)
        and params.star_kwarg is None
    )


def _private_name(name: str, klass: cst.ClassDef) -> str:
    """``_name`` (or ``_name_variable``, ...) that no ``self.<attribute>`` in the class uses."""
    used = {n.attr.value for n in walk(klass) if m.matches(n, _SELF_ATTR)}  # type: ignore[attr-defined]
    used |= {s.name.value for s in klass.body.body if isinstance(s, cst.FunctionDef)}
    candidate = f"_{name}"
    while candidate in used:
        candidate += "_variable" if not candidate.endswith("_variable") else "_"
    return candidate


def _class_conditions(
    prop: VariableProperty, method: cst.FunctionDef, klass: cst.ClassDef, haiku_name: Callable[[cst.CSTNode], str | None]
) -> str | None:
    """Why Linen's eager ``setup()`` would create something else than Haiku's first read, if it would."""
    methods = {s.name.value: s for s in klass.body.body if isinstance(s, cst.FunctionDef)}
    for other in methods.values():
        for node in walk(other):
            if isinstance(node, cst.AssignTarget) and m.matches(node.target, m.Attribute(m.Name("self"), m.Name(prop.name))):
                return f"`self.{prop.name}` is assigned in {other.name.value}; a property that creates a variable cannot also be set"
            if other is not method and isinstance(node, cst.Call) and haiku_name(node.func) in _CREATORS:
                bound = bind(node, GET_PARAMETER)
                creates = not isinstance(bound, Unsupported) and literal(bound.get("init")) is not None
                if creates and state.literal_name(node, GET_PARAMETER) == prop.entry:
                    return f"{other.name.value} also creates `{prop.entry}`; create it once, in setup()"
    init = methods.get("__init__")
    if init is not None and _reads(init, prop.name):
        return f"__init__ reads `self.{prop.name}`, which setup() would create only after the code moved from __init__"
    call = methods.get("__call__")
    if call is None or not _read_on_every_path(call, prop.name):
        return (
            f"Haiku creates `{prop.entry}` when `self.{prop.name}` is first read, and __call__ does not read it on "
            "every path; Linen's setup() would always create it: create it in setup() if that is what you want"
        )
    return None


def _reads(node: cst.CSTNode, name: str) -> bool:
    return any(m.matches(n, m.Attribute(m.Name("self"), m.Name(name))) for n in walk(node))


def _read_on_every_path(method: cst.FunctionDef, name: str) -> bool:
    """A top-level statement of ``method`` reads ``self.<name>`` unconditionally, before any return or raise."""
    for statement in method.body.body:  # type: ignore[union-attr]
        if _unconditional_read(statement, name):
            return True
        if any(isinstance(n, (cst.Return, cst.Raise)) for n in _walk_unconditional(statement, everything=True)):
            return False
    return False


def _unconditional_read(statement: cst.CSTNode, name: str) -> bool:
    return any(m.matches(n, m.Attribute(m.Name("self"), m.Name(name))) for n in _walk_unconditional(statement))


def _walk_unconditional(node: cst.CSTNode, *, everything: bool = False):  # type: ignore[no-untyped-def]
    """Nodes of ``node`` not inside a branch, loop or nested scope (``everything``: all but nested scopes)."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        for child in current.children:
            if isinstance(child, (cst.FunctionDef, cst.ClassDef, cst.Lambda)):
                continue
            if not everything and isinstance(child, _CONDITIONAL):
                continue
            stack.append(child)


# -- building ------------------------------------------------------------------


def _local(
    statement: cst.BaseStatement, resolver: Resolver, *, nn: str, jnp: str
) -> tuple[cst.SimpleStatementLine, str, Rewrite | None] | Unsupported:
    """One ``local = value`` line; a Haiku initializer value is converted (third item: its rewrite)."""
    assert isinstance(statement, cst.SimpleStatementLine)
    assign = statement.body[0]
    assert isinstance(assign, cst.Assign)
    name = assign.targets[0].target.value  # type: ignore[attr-defined]
    value = assign.value
    target = value.func if isinstance(value, cst.Call) else value
    qualname = resolver(target) if isinstance(target, (cst.Name, cst.Attribute)) else None
    if qualname is not None and qualname.startswith("haiku.initializers."):
        flax = rewrite_initializer(value, qualname, nn=nn, jnp=jnp, resolver=resolver)
        if isinstance(flax, Unsupported):
            return flax
        return statement.with_changes(body=[assign.with_changes(value=flax.expr)]), name, flax
    if _mentions_haiku(value, resolver):
        return Unsupported(f"the property computes `{name}` with Haiku code; create the variable in setup() by hand")
    return statement, name, None


def _creation(
    prop: VariableProperty, call: cst.Call, flax_locals: set[str], resolver: Resolver, *, nn: str, jnp: str
) -> Rewrite | Unsupported:
    """``self.param(...)`` / ``self.variable(...)`` for the property's Haiku call."""
    bound = bind(call, GET_PARAMETER)
    if isinstance(bound, Unsupported):
        return bound
    if "init" not in bound or literal(bound["init"]) is None or "shape" not in bound:
        return Unsupported(f"hk.get_{'parameter' if prop.kind == 'param' else 'state'} without shape and init creates nothing here")
    init = bound["init"]
    from_local = isinstance(init, cst.Name) and init.value in flax_locals
    shape, dtype = code(bound["shape"]), code(bound["dtype"]) if "dtype" in bound else None
    if prop.kind == "param":
        converted = Rewrite(init) if from_local else rewrite_initializer(init, None, nn=nn, jnp=jnp, resolver=resolver)
        if isinstance(converted, Unsupported):
            return converted
        args = [code(bound["name"]), code(converted.expr), shape] + ([dtype] if dtype else [])
        return Rewrite(cst.parse_expression(f"self.param({', '.join(args)})"), converted.imports)
    if from_local:
        create = f'lambda: {init.value}(self.make_rng("params"), {shape}, {dtype or f"{jnp}.float32"})'  # type: ignore[attr-defined]
        return Rewrite(cst.parse_expression(f"self.variable({state.COLLECTION}, {code(bound['name'])}, {create})"))
    target = init.func if isinstance(init, cst.Call) else init
    qualname = resolver(target) if isinstance(target, (cst.Name, cst.Attribute)) else None
    read = state.rewrite_get_state(call, qualname, jnp=jnp, nn=nn, resolver=resolver)
    if isinstance(read, Unsupported):
        return read
    assert isinstance(read.expr, cst.Attribute) and read.expr.attr.value == "value"
    return Rewrite(read.expr.value, read.imports)  # the variable itself, not its `.value`


def _mentions_haiku(node: cst.CSTNode, resolver: Resolver) -> bool:
    return any(
        (resolver(n) or "").startswith("haiku") for n in walk(node) if isinstance(n, (cst.Name, cst.Attribute))
    )


__all__ = ["SetupCode", "VariableProperty", "add_to_setup", "plan_property", "scoped_method_reason", "setup_code", "value_write"]
