"""Reads a Haiku ``__init__`` and says what it becomes in a Linen dataclass.

Before::

    def __init__(self, output_size: int, hidden=32, name=None):
      super().__init__(name=name)
      self.output_size = output_size
      self._hidden = hidden
      self.proj = hk.Linear(hidden)

After: fields ``output_size: int`` and ``hidden: int = 32``; ``self._hidden``
is renamed to ``self.hidden`` everywhere in the class; ``self.proj = ...``
moves to ``setup()`` with ``hidden`` read as ``self.hidden``.

An argument reassigned by a top-level ``arg = expr`` statement keeps its raw
value in the field; from that statement on ``arg`` is a local variable of
``setup()``, as it was of ``__init__`` (``bn_config = dict(self.bn_config)``,
then ``bn_config.setdefault(...)``). Linen freezes what ``setup()`` stores on
``self`` (dict -> FrozenDict, list -> tuple), so a local is the one place the
value may still be changed in place; ``self.attr = arg`` stores the finished
value (renamed ``self._arg`` when ``attr`` is a field), and changing ``arg``
in place after that store is refused, since Haiku's attribute would see the
change and Linen's frozen copy would not.

What cannot be expressed as dataclass fields (``*args``, an argument
reassigned inside a block or through a tuple target, arguments forwarded to a
Haiku parent class, mutable defaults) is returned as a reason, and the class is
left as it was under a TODO. A subclass whose ``__init__`` does nothing but
forward to a converted parent is ``init_forwarding.py``'s.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import libcst as cst
import libcst.matchers as m

from flaxify.migrate.layers_common import walk
from flaxify.migrate.naming import camel_to_snake


@dataclass(frozen=True)
class Field:
    name: str
    annotation: cst.BaseExpression | None  # None: the caller emits ``Any``
    default: cst.BaseExpression | None
    kw_only: bool = False  # declared after ``_: dataclasses.KW_ONLY``


@dataclass
class InitPlan:
    fields: list[Field] = field(default_factory=list)
    setup: list[cst.BaseStatement] = field(default_factory=list)  # still reading argument names
    # Parallel to ``setup``: the argument names that still read the field
    # (``arg`` -> ``self.arg``) in that statement; once reassigned, ``arg`` is a local.
    reads: list[dict[str, str]] = field(default_factory=list)
    # Parallel to ``setup``: the argument a top-level ``arg = expr`` reassigns, else None.
    reassigns: list[str | None] = field(default_factory=list)
    renames: dict[str, str] = field(default_factory=dict)  # self.<old> -> self.<new>
    default_name: str | None = None  # Haiku base name when __init__ overrides it
    docstring: cst.BaseStatement | None = None
    problem: str | None = None


_SUPER_INIT = m.Call(
    func=m.Attribute(value=m.Call(func=m.Name("super")), attr=m.Name("__init__"))
)


def analyse_init(init: cst.FunctionDef, class_name: str) -> InitPlan:
    """Splits ``__init__`` into fields, setup statements and attribute renames."""
    plan = InitPlan(default_name=camel_to_snake(class_name))
    params = init.params
    if isinstance(params.star_arg, cst.Param) or params.star_kwarg is not None:
        return _fail(plan, "__init__ takes *args or **kwargs, which cannot become dataclass fields")
    if any(p.default is None for p in params.kwonly_params) and any(
        p.default is not None for p in params.params
    ):
        return _fail(plan, "a keyword-only argument without a default follows arguments with defaults")
    name_default = _collect_fields(plan, [*params.posonly_params[1:], *params.params[1:], *params.kwonly_params])
    if plan.problem:
        return plan
    if name_default is not None:
        plan.default_name = name_default
    _split_body(plan, init, {f.name for f in plan.fields})
    return plan


def _fail(plan: InitPlan, reason: str) -> InitPlan:
    plan.problem = reason
    return plan


def _collect_fields(plan: InitPlan, params: list[cst.Param]) -> str | None:
    """Adds one field per argument except ``name``; returns a literal ``name`` default."""
    name_default: str | None = None
    for param in params:
        if param.name.value == "name":
            if isinstance(param.default, cst.SimpleString):
                name_default = param.default.evaluated_value
            continue
        if isinstance(param.default, (cst.List, cst.Dict, cst.Set, cst.ListComp, cst.DictComp)):
            plan.problem = f"argument `{param.name.value}` has a mutable default, which a dataclass field cannot hold"
            return None
        annotation = param.annotation.annotation if param.annotation else _infer(param.default)
        plan.fields.append(Field(param.name.value, annotation, param.default))
    return name_default


def _infer(default: cst.BaseExpression | None) -> cst.BaseExpression | None:
    """A field type from a literal default (``3`` → ``int``); None when unknown."""
    if isinstance(default, cst.Integer):
        return cst.Name("int")
    if isinstance(default, cst.Float):
        return cst.Name("float")
    if isinstance(default, (cst.SimpleString, cst.ConcatenatedString)):
        return cst.Name("str")
    if isinstance(default, cst.Name) and default.value in ("True", "False"):
        return cst.Name("bool")
    return None


def _split_body(plan: InitPlan, init: cst.FunctionDef, arguments: set[str]) -> None:
    body = list(init.body.body) if isinstance(init.body, cst.IndentedBlock) else []
    if body and m.matches(body[0], m.SimpleStatementLine([m.Expr(m.SimpleString() | m.ConcatenatedString())])):
        plan.docstring = body.pop(0)
    stored: set[str] = set()
    raw_stores: set[str] = set()  # attributes that store an argument as passed
    local: set[str] = set()  # reassigned arguments: locals of setup() from then on
    on_self: set[str] = set()  # locals setup() has stored on self (Linen froze a copy)
    for statement in body:
        if _is_super_init(statement):
            if not _plain_super_init(statement, plan):
                return
            continue
        reassigned = _top_level_reassignment(statement, arguments)
        if reassigned is None and _reassigns(statement, arguments):
            plan.problem = (
                "__init__ reassigns one of its arguments inside a block or through a tuple target; "
                "normalise it at the call sites or in a property"
            )
            return
        mutated = next((name for name in sorted(on_self) if _may_mutate(statement, name)), None)
        if mutated is not None:
            plan.problem = (
                f"__init__ stores `{mutated}` on self and then changes it in place; Linen stores a frozen "
                "copy (dict -> FrozenDict, list -> tuple) that would miss the change: finish the value first"
            )
            return
        stored_as = _stored_argument(statement, arguments)
        if stored_as is not None and stored_as[1] in local:
            # `self.attr = arg` after `arg = f(arg)`: setup() stores the local, as __init__ did.
            if stored_as[0] in raw_stores:
                plan.problem = f"`self.{stored_as[0]}` stores two different values of `{stored_as[1]}`; store it once"
                return
            on_self.add(stored_as[1])
        elif stored_as is not None and stored_as[1] not in stored:
            attribute, argument = stored_as
            stored.add(argument)
            raw_stores.add(attribute)
            if attribute != argument:
                plan.renames[attribute] = argument
            continue
        plan.setup.append(statement)
        plan.reads.append({name: name for name in sorted(arguments - local)})
        plan.reassigns.append(reassigned)
        if reassigned is not None:
            local.add(reassigned)
            on_self.discard(reassigned)  # a fresh value: the stored one is no longer its alias
    # `self.x = ...` in setup() where `x` is also a field: the field keeps the
    # argument, the value setup() computes moves to a private attribute.
    for statement in plan.setup:
        for attribute in _assigned_self_attributes(statement):
            if attribute in arguments and attribute not in plan.renames.values():
                plan.renames[attribute] = f"_{attribute}"


def _top_level_reassignment(statement: cst.BaseStatement, arguments: set[str]) -> str | None:
    """``arg = expr`` as a whole statement, one plain target: returns ``arg``."""
    pattern = m.SimpleStatementLine([m.Assign(targets=[m.AssignTarget(m.Name())])])
    if not m.matches(statement, pattern):
        return None
    name = statement.body[0].targets[0].target.value  # type: ignore[attr-defined]
    if name not in arguments or _reassigns(statement.body[0].value, arguments):  # type: ignore[attr-defined]
        return None  # a walrus on an argument inside the value stays refused
    return name


#: Methods of dict, list and tuple that leave the value as it was.
_READ_ONLY_METHODS = frozenset({"get", "keys", "values", "items", "copy", "count", "index"})


def _may_mutate(statement: cst.BaseStatement, name: str) -> bool:
    """``name.method(...)``, ``name[k] = v``, ``name.a = v``, ``del name[k]`` or ``name += v`` in ``statement``."""
    is_name = m.Name(name)
    for node in walk(statement):
        called = isinstance(node, cst.Call) and m.matches(node.func, m.Attribute(value=is_name))
        if called and node.func.attr.value not in _READ_ONLY_METHODS:  # type: ignore[attr-defined]
            return True
        targets: list[cst.BaseExpression] = []
        if isinstance(node, (cst.AssignTarget, cst.AugAssign, cst.AnnAssign, cst.Del)):
            targets = [node.target]
        for target in targets:
            if m.matches(target, is_name) and isinstance(node, cst.AugAssign):
                return True
            if any(m.matches(t, m.Subscript(value=is_name) | m.Attribute(value=is_name)) for t in walk(target)):
                return True
    return False


def _is_super_init(statement: cst.BaseStatement) -> bool:
    return m.matches(statement, m.SimpleStatementLine([m.Expr(_SUPER_INIT)]))


def _plain_super_init(statement: cst.SimpleStatementLine, plan: InitPlan) -> bool:
    """Accepts ``super().__init__(name=name)`` (or a literal / ``name or "x"``)."""
    call = statement.body[0].value  # type: ignore[attr-defined]
    for arg in call.args:
        is_name = (arg.keyword is not None and arg.keyword.value == "name") or (
            arg.keyword is None and len(call.args) == 1
        )
        if not is_name:
            plan.problem = "__init__ forwards arguments to a Haiku parent class; merge the fields by hand"
            return False
        literal = _literal_name(arg.value)
        if literal is not None:
            plan.default_name = literal
    return True


def _literal_name(value: cst.BaseExpression) -> str | None:
    if isinstance(value, cst.SimpleString):
        return value.evaluated_value  # type: ignore[return-value]
    if m.matches(value, m.BooleanOperation(operator=m.Or(), right=m.SimpleString())):
        return value.right.evaluated_value  # type: ignore[attr-defined]
    return None


def _stored_argument(statement: cst.BaseStatement, arguments: set[str]) -> tuple[str, str] | None:
    """``self.attr = arg`` → ``("attr", "arg")``."""
    pattern = m.SimpleStatementLine(
        [m.Assign(targets=[m.AssignTarget(m.Attribute(m.Name("self"), m.Name()))], value=m.Name())]
    )
    if not m.matches(statement, pattern):
        return None
    assign = statement.body[0]  # type: ignore[attr-defined]
    argument = assign.value.value
    if argument not in arguments:
        return None
    return assign.targets[0].target.attr.value, argument


def _reassigns(statement: cst.BaseStatement, arguments: set[str]) -> bool:
    for node in walk(statement):
        targets: list[cst.BaseExpression] = []
        if isinstance(node, cst.AssignTarget):
            targets = [node.target]
        elif isinstance(node, (cst.AugAssign, cst.AnnAssign)):
            targets = [node.target]
        elif isinstance(node, (cst.For, cst.CompFor)):
            targets = [node.target]
        for target in targets:
            for name in walk(target):
                if isinstance(name, cst.Name) and name.value in arguments and not _is_attr_of(target, name):
                    return True
    return False


def _is_attr_of(target: cst.BaseExpression, name: cst.Name) -> bool:
    """True when ``name`` is the attribute part of ``self.name`` in a target."""
    return any(isinstance(n, cst.Attribute) and n.attr is name for n in walk(target))


def _assigned_self_attributes(statement: cst.BaseStatement) -> list[str]:
    found: list[str] = []
    for node in walk(statement):
        if isinstance(node, cst.AssignTarget) and m.matches(node.target, m.Attribute(m.Name("self"), m.Name())):
            found.append(node.target.attr.value)  # type: ignore[attr-defined]
    return found
