"""JX101: ``print`` of a traced value."""

from __future__ import annotations

import ast

from flaxify.lint.model import Fix, Kind
from flaxify.lint.rule import Invalid, Rule, TracedContext
from flaxify.lint.rules._common import FormatBuilder, name_available, shows_traced


class PrintInTracedCode(Rule):
    """
    ## What it does
    Flags ``print(...)`` of a traced value inside code that ``jax.jit``, ``pmap`` or a
    ``lax`` control-flow primitive traces, or that such code calls.

    ## Why is this bad?
    Under ``jit`` the Python body runs once, at trace time: the print shows
    ``JitTracer(~float32[3])`` instead of numbers, and never runs again on later calls.

    ## Example
    ```python
    @jax.jit
    def f(x):
        print("x =", x)
        return x * 2
    ```

    ## Use instead
    ```python
    @jax.jit
    def f(x):
        jax.debug.print("x = {x}", x=x)
        return x * 2
    ```

    ## Fix safety
    Safe: the original never printed a value; the fix prints the runtime values on every call
    (names become ``{x}`` fields with ``x=x``, f-strings keep their format specs). Offered only
    when ``jax`` is imported and ``print`` has no ``sep``/``end``/``file`` arguments.
    """

    CODE = "JX101"
    NAME = "print-in-traced-code"
    MESSAGE = "`print` of a traced value runs once at trace time and shows a tracer; use `jax.debug.print`"
    MIN_KIND = Kind.STAGE
    VALID = [
        "import jax\n@jax.jit\ndef f(x):\n    print(x.shape, x.dtype)\n    print(f'tracing for {x.shape}')\n    return x",
        "import jax\n@jax.jit\ndef f(x):\n    jax.debug.print('x={x}', x=x)\n    return x",
        "import jax\ndef f(x):\n    print(x)\n    return x",
        "import jax\nfrom functools import partial\n@partial(jax.jit, static_argnames='n')\ndef f(x, n):\n"
        "    print(n)\n    return x",
    ]
    INVALID = [
        Invalid(
            "import jax\n@jax.jit\ndef f(x):\n    print('x =', x)\n    return x * 2",
            "import jax\n@jax.jit\ndef f(x):\n    jax.debug.print('x = {x}', x=x)\n    return x * 2",
        ),
        Invalid("import jax\n@jax.jit\ndef f(x):\n    print(f'x = {x:.3f}', x.sum())\n    return x",
                "import jax\n@jax.jit\ndef f(x):\n    jax.debug.print('x = {x:.3f} {}', x.sum(), x=x)\n    return x"),
        Invalid("import jax\n@jax.jit\ndef f(x):\n    y = x + 1\n    print(y)\n    return y",
                "import jax\n@jax.jit\ndef f(x):\n    y = x + 1\n    jax.debug.print('{y}', y=y)\n    return y"),
    ]

    def visit_Call(self, node: ast.Call, ctx: TracedContext) -> None:
        if ctx.builtin(node.func) != "print" or not shows_traced(node, ctx):
            return
        ctx.report(node, fix=self._fix(node, ctx))

    def _fix(self, node: ast.Call, ctx: TracedContext) -> Fix | None:
        if node.keywords or any(isinstance(a, ast.Starred) for a in node.args):
            return None
        if not name_available(ctx, "jax", "jax"):
            return None
        builder = FormatBuilder(ctx)
        for index, arg in enumerate(node.args):
            if index:
                builder.literal(" ")  # print's default separator
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                builder.literal(arg.value)
            elif isinstance(arg, ast.JoinedStr):
                if not builder.joined(arg):
                    return None
            else:
                builder.value(arg)
        return ctx.replace(node, builder.call("jax.debug.print"), "Replace `print` with `jax.debug.print`")
