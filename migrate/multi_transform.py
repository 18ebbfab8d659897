"""``hk.multi_transform`` → the module instance and ``apply(..., method=...)``.

Before::

    def _methods():
      model = AutoEncoder(3)
      return model.__call__, {"encode": model.encode, "decode": model.decode}

    net = hk.without_apply_rng(hk.multi_transform(_methods))
    params = net.init(rng, x)
    z = net.apply["encode"](params, x)

After::

    net = AutoEncoder(3)
    params = net.init(rng, x)["params"]
    z = net.apply({"params": params}, x, method="encode")

Only the common template is recognised: the function builds one module
(``model = Cls(...)`` with arguments that do not read the function's locals)
and returns ``(init_fn, apply_fns)`` where ``init_fn`` is the module or one
of its bound methods and ``apply_fns`` a dict, tuple or list of its bound
methods. ``init_fn`` may also be a lambda (or a nested one-line ``def``) that
only forwards its parameters to the module or a method, written inline or
bound to a name first, as in Flax's own migration guide::

    def forward():
      module = AutoEncoder(256, 784)
      init = lambda x: module(x)
      return init, (module.encode, module.decode) The module becomes the Flax root, so Haiku's ``auto_encoder/~/encoder``
is Flax's ``encoder``. ``net.apply`` used other than as ``net.apply[KEY](...)``
(e.g. unpacked into ``encode, decode``) is marked TODO by ``callsites.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import libcst as cst
import libcst.matchers as m

from flaxify.migrate.layers_common import walk


@dataclass(frozen=True)
class MultiTemplate:
    """What the template function of an ``hk.multi_transform`` builds and returns."""

    construction: cst.Call  # `AutoEncoder(3)`, without any name=
    init_method: str  # "__call__" for `model` / `model.__call__`
    methods: tuple[tuple[str | int, str], ...]  # apply key -> method name


def read_template(fn: cst.FunctionDef, classes: set[str]) -> MultiTemplate | None:
    """Recognises ``def f(): m = Cls(...); return m.init_method, {key: m.method, ...}``."""
    body = fn.body.body if isinstance(fn.body, cst.IndentedBlock) else ()
    params = fn.params
    if len(body) not in (2, 3) or params.params or params.kwonly_params or isinstance(params.star_arg, cst.Param):
        return None
    build, ret = _only(body[0]), _only(body[-1])
    if not isinstance(build, cst.Assign) or len(build.targets) != 1 or not isinstance(ret, cst.Return):
        return None
    target, call = build.targets[0].target, build.value
    if not isinstance(target, cst.Name) or not isinstance(call, cst.Call) or not isinstance(call.func, cst.Name):
        return None
    if call.func.value not in classes or _reads_name(call, target.value):
        return None
    if not isinstance(ret.value, cst.Tuple) or len(ret.value.elements) != 2:
        return None
    init_ref, applies = (e.value for e in ret.value.elements)
    if len(body) == 3:  # `init = lambda x: module(x)` or `def init(x): return module(x)`, returned by name
        init_ref = _named_init(body[1], init_ref, applies)
    init_method = _forwarded_method(init_ref, target.value) if isinstance(init_ref, cst.Lambda) else (
        _method_of(init_ref, target.value, allow_self=True) if init_ref is not None else None
    )
    methods = _methods(applies, target.value)
    if init_method is None or methods is None:
        return None
    return MultiTemplate(_without_name(call), init_method, methods)


def _named_init(
    statement: cst.BaseStatement, init_ref: cst.BaseExpression, applies: cst.BaseExpression
) -> cst.Lambda | None:
    """``init = lambda ...: ...`` or ``def init(...): return ...``, as a lambda, when the template
    returns ``init`` and the apply functions do not use it."""
    if isinstance(statement, cst.FunctionDef):
        name, lam = statement.name, _as_lambda(statement)
    else:
        assign = _only(statement)
        if not isinstance(assign, cst.Assign) or len(assign.targets) != 1 or not isinstance(assign.value, cst.Lambda):
            return None
        name, lam = assign.targets[0].target, assign.value
    if lam is None or not isinstance(name, cst.Name) or not m.matches(init_ref, m.Name(name.value)):
        return None
    return None if _reads_name(applies, name.value) else lam


def _as_lambda(fn: cst.FunctionDef) -> cst.Lambda | None:
    """``def f(x): return g(x)`` (undecorated, one statement) as ``lambda x: g(x)``."""
    body = fn.body.body if isinstance(fn.body, cst.IndentedBlock) else ()
    ret = _only(body[0]) if len(body) == 1 else None
    if fn.decorators or fn.asynchronous or not isinstance(ret, cst.Return) or ret.value is None:
        return None
    return cst.Lambda(params=fn.params, body=ret.value)


def _forwarded_method(lam: cst.Lambda, variable: str) -> str | None:
    """``lambda x, y: m(x, y)`` -> ``"__call__"``; ``lambda x: m.encode(x)`` -> ``"encode"``.

    Only a lambda that passes its parameters on unchanged, in order (``*args`` and
    ``**kwargs`` included), has the same signature as the method Flax's ``init``
    runs; anything else (a default, a reordering, extra work) is not recognised.
    """
    params = lam.params
    if params.posonly_params or params.kwonly_params or any(p.default is not None for p in params.params):
        return None
    call = lam.body
    if not isinstance(call, cst.Call):
        return None
    expected = [("", p.name.value) for p in params.params]
    if isinstance(params.star_arg, cst.Param):
        expected.append(("*", params.star_arg.name.value))
    if params.star_kwarg is not None:
        expected.append(("**", params.star_kwarg.name.value))
    passed = [(a.star, a.value.value) if a.keyword is None and isinstance(a.value, cst.Name) else None for a in call.args]
    if passed != expected:
        return None
    return _method_of(call.func, variable, allow_self=True)


def _only(statement: cst.BaseStatement) -> cst.BaseSmallStatement | None:
    if isinstance(statement, cst.SimpleStatementLine) and len(statement.body) == 1:
        return statement.body[0]
    return None


def _method_of(node: cst.BaseExpression, variable: str, *, allow_self: bool = False) -> str | None:
    if allow_self and isinstance(node, cst.Name) and node.value == variable:
        return "__call__"
    if isinstance(node, cst.Attribute) and isinstance(node.value, cst.Name) and node.value.value == variable:
        return node.attr.value
    return None


def _methods(node: cst.BaseExpression, variable: str) -> tuple[tuple[str | int, str], ...] | None:
    pairs: list[tuple[str | int, str]] = []
    if isinstance(node, cst.Dict):
        for element in node.elements:
            if not isinstance(element, cst.DictElement) or not isinstance(element.key, cst.SimpleString):
                return None
            method = _method_of(element.value, variable)
            if method is None:
                return None
            pairs.append((str(element.key.evaluated_value), method))
        return tuple(pairs)
    if isinstance(node, (cst.Tuple, cst.List)):
        for index, element in enumerate(node.elements):
            method = _method_of(element.value, variable)
            if method is None or isinstance(element, cst.StarredElement):
                return None
            pairs.append((index, method))
        return tuple(pairs)
    method = _method_of(node, variable)
    return None if method is None else ((0, method),)


def _reads_name(node: cst.CSTNode, name: str) -> bool:
    return any(isinstance(n, cst.Name) and n.value == name for n in walk(node))


def _without_name(call: cst.Call) -> cst.Call:
    """The Flax root module has no name: Haiku's top-level name is dropped from the tree."""
    args = [a for a in call.args if not (a.keyword is not None and a.keyword.value == "name")]
    if args:
        args[-1] = args[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
    return call.with_changes(args=args)
