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
    args: Args = []
    imports: tuple[ImportSpec, ...] = ()
    bound: Bound = {}
    spread = False  # a **mapping whose keys are only known at run time
    positional = 0
    for arg in call.args:
        if arg.star == "*":
            return Unsupported(f"{sig.display} gets `*{code(arg.value)}`: pass its arguments by position or name")
        if arg.star == "**" and not _literal_keywords(arg.value):
            spread = True
            args.append((None, f"**{code(arg.value)}"))
            continue
        if arg.star == "**":
            pairs = [(e.key.evaluated_value, e.value) for e in arg.value.elements]  # type: ignore[union-attr]
        elif arg.keyword is None:
            if positional >= len(sig.params):
                return Unsupported(f"{sig.display} is called with too many positional arguments")
            pairs = [(None, arg.value)]
            key = sig.params[positional]
            positional += 1
        else:
            pairs = [(arg.keyword.value, arg.value)]
        for keyword, value in pairs:
            param = keyword if keyword is not None else key
            if param not in sig.params:
                return Unsupported(f"{sig.display} has no argument {param!r}")
            if param in bound:
                return Unsupported(f"{sig.display} got argument {param!r} twice")
            bound[param] = value
            source = code(value)
            if param in initializers and literal(value) is not None:
                converted = init_arg({param: value}, param, param, ctx)
                if isinstance(converted, Unsupported):
                    return converted
                source, imports = converted[0][0][1], merge_imports(imports, converted[1])
            if param == "name":
                args += name_arg(bound, ctx.name)
            else:
                args.append((keyword, source))
    missing = [p for p in required if p not in bound]
    if missing and not spread:
        return Unsupported(f"{sig.display} needs {', '.join(missing)}")
    if "name" not in bound:
        args += name_arg(bound, ctx.name)
    return Rewrite(flax_call(helper, args), imports)


def _literal_keywords(value: cst.BaseExpression) -> bool:
    """``**{"key": value, ...}`` with string keys other than ``name``: spelled out as keywords."""
    return isinstance(value, cst.Dict) and all(
        isinstance(e, cst.DictElement) and isinstance(e.key, cst.SimpleString) and e.key.evaluated_value != "name"
        for e in value.elements
    )
