"""JX109: an f-string (or ``.format``/``%``) as the format of ``jax.debug.print``."""

from __future__ import annotations

import ast

from flaxify.lint.model import Fix
from flaxify.lint.rule import Invalid, ModuleContext, Rule
from flaxify.lint.rules._common import FormatBuilder

DEBUG_PRINT = "jax.debug.print"


class DebugPrintFString(Rule):
    """
    ## What it does
    Flags ``jax.debug.print(f"x={x}")``: the format string is built by Python before JAX
    sees it. Applies everywhere, since ``jax.debug.print`` is only useful in traced code.

    ## Why is this bad?
    The f-string is evaluated at trace time, so it prints ``x=JitTracer(~float32[])`` on
    every call instead of the value (silently, when there are no other arguments).

    ## Example
    ```python
    jax.debug.print(f"x={x}")
    ```

    ## Use instead
    ```python
    jax.debug.print("x={x}", x=x)
    ```

    ## Fix safety
    Safe: plain names become keyword arguments (``{x}`` with ``x=x``), other expressions
    positional ``{}`` arguments; conversions and format specs are kept.
    """

    CODE = "JX109"
    NAME = "debug-print-fstring"
    SCOPE = "module"
    MESSAGE = ("`jax.debug.print` with an f-string formats tracers at trace time; pass a format string and "
               "the values as arguments")
    VALID = [
        "import jax\n@jax.jit\ndef f(x):\n    jax.debug.print('x={x}', x=x)\n    return x",
        "import jax\n@jax.jit\ndef f(x):\n    jax.debug.print(f'step {3}: {{}}', x)\n    return x",
    ]
    INVALID = [
        Invalid("import jax\n@jax.jit\ndef f(x):\n    jax.debug.print(f'x={x}')\n    return x",
                "import jax\n@jax.jit\ndef f(x):\n    jax.debug.print('x={x}', x=x)\n    return x"),
        Invalid("import jax\n@jax.jit\ndef f(x):\n    jax.debug.print(f'x={x + 1:.3f}')\n    return x",
                "import jax\n@jax.jit\ndef f(x):\n    jax.debug.print('x={:.3f}', x + 1)\n    return x"),
        "import jax\n@jax.jit\ndef f(x):\n    jax.debug.print('x={}'.format(x))\n    return x",
    ]

    def check_module(self, ctx: ModuleContext) -> None:
        if "debug" not in ctx.module.source:
            return
        calls = [c for fn in ctx.module.all_functions for c in fn.calls] + ctx.module.module_calls
        for call in calls:
            if not call.args or ctx.module.imports.qualname(call.func) != DEBUG_PRINT:
                continue
            fmt = call.args[0]
            if isinstance(fmt, ast.JoinedStr) and any(
                isinstance(v, ast.FormattedValue) and not isinstance(v.value, ast.Constant) for v in fmt.values
            ):
                ctx.report(call, fix=self._fix(call, fmt, ctx))
            elif self._formatted(fmt):
                ctx.report(call)

    @staticmethod
    def _formatted(fmt: ast.expr) -> bool:
        if isinstance(fmt, ast.Call) and isinstance(fmt.func, ast.Attribute) and fmt.func.attr == "format":
            return isinstance(fmt.func.value, ast.Constant)
        return isinstance(fmt, ast.BinOp) and isinstance(fmt.op, ast.Mod) and isinstance(fmt.left, ast.Constant)

    def _fix(self, call: ast.Call, fmt: ast.JoinedStr, ctx: ModuleContext) -> Fix | None:
        if len(call.args) > 1 or call.keywords:
            return None
        builder = FormatBuilder(ctx)
        if not builder.joined(fmt):
            return None
        content = builder.call(ctx.segment(call.func))
        return ctx.replace(call, content, "Pass the values as arguments of `jax.debug.print`")
