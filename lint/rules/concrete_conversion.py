"""JX204: ``bool()``/``int()``/``float()``/``complex()`` of a traced value."""

from __future__ import annotations

import ast

from flaxify.lint.model import Kind, Taint
from flaxify.lint.rule import Rule, TracedContext
from flaxify.lint.rules._common import maybe_static_field

CONVERSIONS = frozenset({"bool", "int", "float", "complex"})


class ConcreteConversionOfTracedValue(Rule):
    """
    ## What it does
    Flags ``float(x)``, ``int(x)``, ``bool(x)`` and ``complex(x)`` when ``x`` is traced.

    ## Why is this bad?
    A tracer has no concrete value: ``ConcretizationTypeError: Abstract tracer value
    encountered where concrete value is expected`` (``TracerBoolConversionError`` for bool).

    ## Example
    ```python
    @jax.jit
    def f(x):
        return float(x) * 2
    ```

    ## Use instead
    ```python
    @jax.jit
    def f(x):
        return x.astype(jnp.float32) * 2
    ```
    ``int(x.shape[0])`` and conversions of static arguments are fine.

    ## Fix safety
    No fix.
    """

    CODE = "JX204"
    NAME = "concrete-conversion-of-traced-value"
    MESSAGE = ("`{name}()` of a traced value needs a concrete value (ConcretizationTypeError); keep it an array "
               "(`.astype`) or make it static")
    MIN_KIND = Kind.BATCH
    VALID = [
        "import jax\n@jax.jit\ndef f(x):\n    n = int(x.shape[0])\n    return x * float(3)",
        "import jax\nfrom functools import partial\n@partial(jax.jit, static_argnums=1)\ndef f(x, n):\n"
        "    return x * int(n)",
    ]
    INVALID = [
        "import jax\n@jax.jit\ndef f(x):\n    return float(x) * 2",
        "import jax\n@jax.jit\ndef f(i, xs):\n    return xs * int(i)",
    ]

    def visit_Call(self, node: ast.Call, ctx: TracedContext) -> None:
        name = ctx.builtin(node.func)
        if name not in CONVERSIONS or len(node.args) != 1 or node.keywords:
            return
        taint = ctx.taint(node.args[0])
        needed = Taint.ARRAY if name == "bool" else Taint.TREE
        if taint >= needed and not maybe_static_field(node.args[0], ctx):
            ctx.report(node, self.MESSAGE.format(name=name))
