"""Calls of emitted helpers whose fields are the Haiku constructor's own parameters.

The exact ``BatchNorm`` and ``DepthwiseConv*D`` helpers take Haiku's parameter
names in Haiku's order, so a constructor call is rewritten by copying its
arguments as written: positional stay positional, keywords stay keywords, a
run-time ``**mapping`` of Haiku keywords passes through unchanged. Only
initializer arguments change (to the Flax initializer that draws the same
distribution), and ``name=`` is the engine's choice unless one is written.
"""

from __future__ import annotations

from collections.abc import Sequence

import libcst as cst

from flaxify.migrate.layers_common import Bound, Ctx, Signature, code, flax_call, literal, name_arg
from flaxify.migrate.layers_linear import Args, init_arg
from flaxify.migrate.rewrite import ImportSpec, Rewrite, Unsupported, merge_imports


def helper_call(
    call: cst.Call,
    sig: Signature,
    helper: str,
    initializers: Sequence[str],
    ctx: Ctx,
    *,
    required: Sequence[str] = (),
) -> Rewrite | Unsupported:
    """``helper(<call's arguments>)`` with ``initializers`` converted; Unsupported when they cannot be.

    ``required`` arguments must be given, unless a run-time ``**mapping`` may hold them.
    """
    written = _written_args(call, sig)
    if isinstance(written, Unsupported):
        return written
    args: Args = []
    imports: tuple[ImportSpec, ...] = ()
    bound: Bound = {}
    for param, keyword, value in written:
        if param is None:  # a run-time **mapping: its keys are the helper's field names
            args.append((None, f"**{code(value)}"))
            continue
        if param in bound:
            return Unsupported(f"{sig.display} got argument {param!r} twice")
        bound[param] = value
        source = code(value)
        if param in initializers and literal(value) is not None:  # None keeps Haiku's default
            converted = init_arg({param: value}, param, param, ctx)
            if isinstance(converted, Unsupported):
                return converted
            source, imports = converted[0][0][1], merge_imports(imports, converted[1])
        args += name_arg(bound, ctx.name) if param == "name" else [(keyword, source)]
    spread = any(param is None for param, _, _ in written)
    missing = [p for p in required if p not in bound]
    if missing and not spread:
        return Unsupported(f"{sig.display} needs {', '.join(missing)}")
    if "name" not in bound:
        args += name_arg(bound, ctx.name)
    return Rewrite(flax_call(helper, args), imports)


_Written = list[tuple[str | None, str | None, cst.BaseExpression]]


def _written_args(call: cst.Call, sig: Signature) -> _Written | Unsupported:
    """``(parameter, keyword, value)`` per argument as written; parameter None for a run-time ``**mapping``.

    A literal ``**{"key": value}`` is spelled out as keywords; ``keyword`` is
    None for a positional argument (it stays positional).
    """
    written: _Written = []
    positional = 0
    for arg in call.args:
        if arg.star == "*":
            return Unsupported(f"{sig.display} gets `*{code(arg.value)}`: pass its arguments by position or name")
        if arg.star == "**" and _literal_keywords(arg.value):
            pairs = [(e.key.evaluated_value, e.value) for e in arg.value.elements]  # type: ignore[union-attr]
            written += [(key, key, value) for key, value in pairs]
        elif arg.star == "**":
            written.append((None, None, arg.value))
        elif arg.keyword is not None:
            written.append((arg.keyword.value, arg.keyword.value, arg.value))
        elif positional < len(sig.params):
            written.append((sig.params[positional], None, arg.value))
            positional += 1
        else:
            return Unsupported(f"{sig.display} is called with too many positional arguments")
    unknown = [param for param, _, _ in written if param is not None and param not in sig.params]
    if unknown:
        return Unsupported(f"{sig.display} has no argument {unknown[0]!r}")
    return written


def _literal_keywords(value: cst.BaseExpression) -> bool:
    """``**{"key": value, ...}`` with string keys other than ``name``: spelled out as keywords."""
    return isinstance(value, cst.Dict) and all(
        isinstance(e, cst.DictElement) and isinstance(e.key, cst.SimpleString) and e.key.evaluated_value != "name"
        for e in value.elements
    )
