"""A Haiku subclass whose ``__init__`` only forwards to its parent's becomes a Linen subclass.

Before::

    class ResNet18(ResNet):
      def __init__(self, num_classes: int, resnet_v2: bool = False, name=None):
        super().__init__(num_classes=num_classes, resnet_v2=resnet_v2, name=name,
                         **ResNet.CONFIGS[18])

After::

    class ResNet18(ResNet):
      _: dataclasses.KW_ONLY
      blocks_per_group: Sequence[int] = (2, 2, 2, 2)
      bottleneck: bool = False

The subclass inherits the parent's fields and ``setup()``. What it fixes (a
keyword with a constant value, or the keys of a dict literal the parent holds
as a class attribute, ``**Parent.CONFIGS[18]``) become fields whose defaults
are those values, declared keyword-only: a dataclass keeps an inherited field
at its parent's position, so ``blocks_per_group`` (no default, before
``num_classes``) would otherwise stay the first positional argument, and
``ResNet18(10)`` would not mean what it means in Haiku. The arguments the
subclass takes keep their order and, where the subclass changes a default,
are redeclared with its default.

Anything else (``__init__`` doing more than the forward, an argument renamed
on the way, a fixed value that is not a constant, a parent defined elsewhere)
returns None and the caller keeps the class under a TODO. Unlike Haiku's
subclass, the Linen one still accepts the fixed fields as keyword arguments.
"""

from __future__ import annotations

import ast

import libcst as cst
import libcst.matchers as m

from flaxify.migrate.init_analysis import Field, InitPlan
from flaxify.migrate.naming import camel_to_snake

_SUPER_INIT = m.SimpleStatementLine(
    [m.Expr(m.Call(func=m.Attribute(value=m.Call(func=m.Name("super")), attr=m.Name("__init__"))))]
)
_DOCSTRING = m.SimpleStatementLine([m.Expr(m.SimpleString() | m.ConcatenatedString())])
_MUTABLE = (cst.List, cst.Dict, cst.Set, cst.ListComp, cst.DictComp, cst.SetComp)


def forwarding_call(init: cst.FunctionDef) -> cst.Call | None:
    """The ``super().__init__(...)`` call when it is all ``__init__`` does (a docstring aside)."""
    body = list(init.body.body) if isinstance(init.body, cst.IndentedBlock) else []
    if body and m.matches(body[0], _DOCSTRING):
        body = body[1:]
    if len(body) != 1 or not m.matches(body[0], _SUPER_INIT):
        return None
    return body[0].body[0].value  # type: ignore[attr-defined,no-any-return]


def analyse_forwarding(
    init: cst.FunctionDef, class_name: str, parent: InitPlan, parent_class: cst.ClassDef
) -> InitPlan | None:
    """The fields a forwarding-only subclass declares; None when it is not one flaxify can express."""
    call = forwarding_call(init)
    params = init.params
    if call is None or isinstance(params.star_arg, cst.Param) or params.star_kwarg:
        return None
    if params.kwonly_params or params.posonly_params:
        return None
    own = [p for p in params.params[1:] if p.name.value != "name"]
    split = _split_arguments(call, {p.name.value for p in own}, parent_class)
    if split is None:
        return None
    forwarded, fixed = split
    inherited = {f.name: f for f in parent.fields}
    if (set(forwarded) | set(fixed)) - set(inherited) or set(forwarded) & set(fixed):
        return None
    if [p.name.value for p in own] != [f.name for f in parent.fields if f.name not in fixed]:
        return None  # the subclass's positional order is not the one the fields leave
    if any(forwarded[p.name.value] != p.name.value for p in own):
        return None
    plan = InitPlan(default_name=camel_to_snake(class_name), docstring=_docstring(init))
    redeclared = [_own_default(p, inherited[p.name.value]) for p in own]
    plan.fields = [f for f in redeclared if f is not None]
    if not _valid_order([inherited[f.name] if f.name not in fixed else None for f in parent.fields], plan.fields):
        return None
    for item in parent.fields:
        if item.name in fixed:
            if isinstance(fixed[item.name], _MUTABLE):
                return None  # a dataclass default must be immutable
            plan.fields.append(Field(item.name, item.annotation, fixed[item.name], kw_only=True))
    return plan


def _split_arguments(
    call: cst.Call, own: set[str], parent_class: cst.ClassDef
) -> tuple[dict[str, str], dict[str, cst.BaseExpression]] | None:
    """``{parent argument: subclass argument}`` forwarded and ``{parent argument: value}`` fixed."""
    forwarded: dict[str, str] = {}
    fixed: dict[str, cst.BaseExpression] = {}
    for arg in call.args:
        if arg.star == "**":
            values = _class_dict(arg.value, parent_class)
            if values is None or set(values) & set(fixed):
                return None
            fixed.update(values)
        elif arg.star or arg.keyword is None:
            return None
        elif arg.keyword.value == "name":
            if not m.matches(arg.value, m.Name("name")):
                return None
        elif isinstance(arg.value, cst.Name) and arg.value.value in own:
            forwarded[arg.keyword.value] = arg.value.value
        elif _is_constant(arg.value):
            fixed[arg.keyword.value] = arg.value
        else:
            return None
    return forwarded, fixed


def _class_dict(node: cst.BaseExpression, parent_class: cst.ClassDef) -> dict[str, cst.BaseExpression] | None:
    """``Parent.ATTR[key]`` where the parent's body binds ``ATTR = {key: {"arg": value, ...}, ...}``."""
    pattern = m.Subscript(
        value=m.Attribute(value=m.Name(parent_class.name.value), attr=m.Name()),
        slice=[m.SubscriptElement(m.Index())],
    )
    if not m.matches(node, pattern):
        return None
    attr = node.value.attr.value  # type: ignore[attr-defined]
    key = _literal(node.slice[0].slice.value)  # type: ignore[attr-defined]
    table = _class_attribute(parent_class, attr)
    if not isinstance(table, cst.Dict) or key is _NOT_LITERAL:
        return None
    entry = next((e.value for e in table.elements if isinstance(e, cst.DictElement) and _literal(e.key) == key), None)
    if not isinstance(entry, cst.Dict):
        return None
    values: dict[str, cst.BaseExpression] = {}
    for element in entry.elements:
        if not isinstance(element, cst.DictElement) or not isinstance(element.key, cst.SimpleString):
            return None
        values[element.key.evaluated_value] = element.value  # type: ignore[index]
    return values


def _class_attribute(node: cst.ClassDef, name: str) -> cst.BaseExpression | None:
    """The value of the one ``name = value`` (or ``name: T = value``) statement of a class body."""
    found = []
    for statement in node.body.body:
        if not isinstance(statement, cst.SimpleStatementLine):
            continue
        for small in statement.body:
            targets = [t.target for t in small.targets] if isinstance(small, cst.Assign) else []
            targets += [small.target] if isinstance(small, cst.AnnAssign) else []
            if any(m.matches(t, m.Name(name)) for t in targets):
                found.append(small.value)  # type: ignore[attr-defined]
    return found[0] if len(found) == 1 else None


def _own_default(param: cst.Param, inherited: Field) -> Field | None:
    """The field redeclared when the subclass gives its argument another default; else None."""
    if _code(param.default) == _code(inherited.default):
        return None
    annotation = param.annotation.annotation if param.annotation else inherited.annotation
    return Field(param.name.value, annotation, param.default)


def _valid_order(inherited: list[Field | None], redeclared: list[Field]) -> bool:
    """No positional field without a default after one with a default (None: keyword-only now)."""
    defaults = {f.name: f.default for f in redeclared}
    seen_default = False
    for item in inherited:
        if item is None:
            continue
        has_default = defaults.get(item.name, item.default) is not None
        if seen_default and not has_default:
            return False
        seen_default = seen_default or has_default
    return True


def _docstring(init: cst.FunctionDef) -> cst.BaseStatement | None:
    body = list(init.body.body) if isinstance(init.body, cst.IndentedBlock) else []
    return body[0] if body and m.matches(body[0], _DOCSTRING) else None


def _is_constant(node: cst.BaseExpression) -> bool:
    return _literal(node) is not _NOT_LITERAL


_NOT_LITERAL = object()


def _literal(node: cst.BaseExpression | None) -> object:
    """The value of a literal expression, else ``_NOT_LITERAL``."""
    if node is None:
        return _NOT_LITERAL
    try:
        return ast.literal_eval(_code(node))  # type: ignore[arg-type]
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return _NOT_LITERAL


_EMPTY = cst.Module(body=[])


def _code(node: cst.CSTNode | None) -> str | None:
    return None if node is None else _EMPTY.code_for_node(node).strip()
