"""JX101: ``print`` of a traced value."""

from __future__ import annotations

import ast

from flaxify.lint.model import Kind
from flaxify.lint.rule import Invalid, Rule, TracedContext
from flaxify.lint.rules._common import name_available, shows_traced


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
        jax.debug.print("x = {}", x)
        return x * 2
    ```

    ## Fix safety
    Safe: the original never printed a value; the fix prints the runtime values on every call.
    Offered only when ``jax`` is imported and ``print`` has no ``sep``/``end``/``file`` arguments.
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
            "import jax\n@jax.jit\ndef f(x):\n    jax.debug.print('x = {}', x)\n    return x * 2",
        ),
        "import jax\n@jax.jit\ndef f(x):\n    print(f'x = {x}')\n    return x",
        Invalid("import jax\n@jax.jit\ndef f(x):\n    y = x + 1\n    print(y)\n    return y",
                "import jax\n@jax.jit\ndef f(x):\n    y = x + 1\n    jax.debug.print('{}', y)\n    return y"),
    ]

    def visit_Call(self, node: ast.Call, ctx: TracedContext) -> None:
        if ctx.builtin(node.func) != "print" or not shows_traced(node, ctx):
            return
        ctx.report(node, fix=self._fix(node, ctx))

    def _fix(self, node: ast.Call, ctx: TracedContext):  # type: ignore[no-untyped-def]
        if node.keywords or any(isinstance(a, (ast.Starred, ast.JoinedStr)) for a in node.args):
            return None
        if not name_available(ctx, "jax", "jax"):
            return None
        parts: list[str] = []
        args: list[str] = []
        for arg in node.args:
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                parts.append(arg.value.replace("{", "{{").replace("}", "}}"))
            else:
                parts.append("{}")
                args.append(ctx.segment(arg))
        fmt = repr(" ".join(parts))
        content = f"jax.debug.print({', '.join([fmt, *args])})"
        return ctx.replace(node, content, "Replace `print` with `jax.debug.print`")
