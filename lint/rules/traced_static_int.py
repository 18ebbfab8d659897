"""JX207: a traced value where Python needs a concrete integer (shapes, ``range``, list index)."""

from __future__ import annotations

import ast

from flaxify.lint.model import Kind, Taint
from flaxify.lint.rule import Rule, TracedContext
from flaxify.lint.rules._common import maybe_static_field

# jax.numpy constructors and their shape argument (position, keyword).
SHAPE_ARGS: dict[str, tuple[int, str]] = {
    "jax.numpy.zeros": (0, "shape"), "jax.numpy.ones": (0, "shape"), "jax.numpy.empty": (0, "shape"),
    "jax.numpy.full": (0, "shape"), "jax.numpy.eye": (0, "N"), "jax.numpy.identity": (0, "n"),
    "jax.numpy.arange": (0, "start"), "jax.numpy.linspace": (2, "num"), "jax.numpy.tri": (0, "N"),
    "jax.numpy.broadcast_to": (1, "shape"), "jax.numpy.reshape": (1, "shape"),
    "jax.numpy.tile": (1, "reps"), "jax.random.normal": (1, "shape"), "jax.random.uniform": (1, "shape"),
}


class TracedValueAsStaticInt(Rule):
    """
    ## What it does
    Flags traced values used as shapes (``jnp.ones((n,))``, ``x.reshape(n, -1)``), as
    ``range`` bounds, or as the index of a Python list or tuple.

    ## Why is this bad?
    Shapes must be known at trace time: ``TypeError: Shapes must be 1D sequences of
    concrete values of integer type``; ``range(n)`` and ``L[i]`` call ``__index__`` on the
    tracer: ``TracerIntegerConversionError``.

    ## Example
    ```python
    @jax.jit
    def f(n, v):
        return jnp.ones((n,)) * v
    ```

    ## Use instead
    ```python
    @partial(jax.jit, static_argnames="n")
    def f(n, v):
        return jnp.ones((n,)) * v
    ```
    or ``jnp.asarray(L)[i]`` / ``lax.fori_loop`` for value-dependent indices and loops.

    ## Fix safety
    No fix.
    """

    CODE = "JX207"
    NAME = "traced-value-as-static-int"
    MESSAGE = "traced value used as {what} must be concrete at trace time; mark it static (`static_argnames`) or {alt}"
    MIN_KIND = Kind.BATCH
    VALID = [
        "import jax, jax.numpy as jnp\n@jax.jit\ndef f(x):\n    return jnp.ones(x.shape) + jnp.zeros((x.shape[0], 2)).sum()",
        "import jax, jax.numpy as jnp\nfrom functools import partial\n@partial(jax.jit, static_argnames='n')\n"
        "def f(n, v):\n    return jnp.ones((n,)) * v",
        "import jax, jax.numpy as jnp\nL = [1, 2, 3]\n@jax.jit\ndef f(i):\n    return jnp.asarray(L)[i]",
        "import jax\n@jax.jit\ndef f(x):\n    for i in range(x.shape[0]):\n        x = x + i\n    return x",
        "import jax\n@jax.jit\ndef f(x, cfg):\n    for _ in range(cfg.num_layers):\n        x = x * 2\n    return x",
    ]
    INVALID = [
        "import jax, jax.numpy as jnp\n@jax.jit\ndef f(n, v):\n    return jnp.ones((n,)) * v",
        "import jax\n@jax.jit\ndef f(n, x):\n    for i in range(n):\n        x = x + i\n    return x",
        "import jax\nL = [1, 2, 3]\n@jax.jit\ndef f(i):\n    return L[i]",
        "import jax\n@jax.jit\ndef f(x, n):\n    return x.reshape(n, -1)",
    ]

    def visit_Call(self, node: ast.Call, ctx: TracedContext) -> None:
        if ctx.builtin(node.func) == "range":
            if any(ctx.taint(arg) and not maybe_static_field(arg, ctx) for arg in node.args):
                ctx.report(node, self.MESSAGE.format(what="a `range` bound", alt="use `lax.fori_loop`"))
            return
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr in ("reshape", "broadcast_to") and ctx.taint(func.value):
            if any(self._traced_shape(arg, ctx) for arg in node.args):
                ctx.report(node, self.MESSAGE.format(what="a shape", alt="derive it from `.shape`"))
            return
        slot = SHAPE_ARGS.get(ctx.qualname(func) or "")
        if slot is None:
            return
        position, keyword = slot
        arg = node.args[position] if len(node.args) > position else None
        if arg is None:
            arg = next((k.value for k in node.keywords if k.arg == keyword), None)
        if arg is not None and self._traced_shape(arg, ctx):
            ctx.report(node, self.MESSAGE.format(what="a shape", alt="derive it from `.shape`"))

    @staticmethod
    def _traced_shape(arg: ast.expr, ctx: TracedContext) -> bool:
        if isinstance(arg, (ast.Tuple, ast.List)):
            return any(ctx.taint(elt) and not maybe_static_field(elt, ctx) for elt in arg.elts)
        return ctx.taint(arg) != Taint.NONE and not maybe_static_field(arg, ctx)

    def visit_Subscript(self, node: ast.Subscript, ctx: TracedContext) -> None:
        if not isinstance(node.ctx, ast.Load) or not isinstance(node.value, ast.Name):
            return
        if isinstance(node.slice, ast.Slice) or not ctx.taint(node.slice) or ctx.taint(node.value):
            return
        if self._is_python_sequence(node.value.id, ctx):
            ctx.report(node, self.MESSAGE.format(what="a Python list index", alt="index `jnp.asarray(...)`"))

    @staticmethod
    def _is_python_sequence(name: str, ctx: TracedContext) -> bool:
        """A module-level or local name bound only to list/tuple literals."""
        values = [v for t, v, how in ctx.fn.facts if how == "assign" and isinstance(t, ast.Name) and t.id == name]
        if not values and name not in ctx.fn.locals:
            values = [s.value for s in ctx.module.tree.body if isinstance(s, ast.Assign)
                      and any(isinstance(t, ast.Name) and t.id == name for t in s.targets)]
        return bool(values) and all(isinstance(v, (ast.List, ast.Tuple)) for v in values)
