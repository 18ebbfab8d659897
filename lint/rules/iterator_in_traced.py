"""JX108: ``next()`` on an iterator from outside the traced function."""

from __future__ import annotations

import ast

from flaxify.lint.rule import Rule, TracedContext


class IteratorConsumedInTracedCode(Rule):
    """
    ## What it does
    Flags ``next(it)`` inside traced code (jit bodies, ``lax.scan``/``fori_loop`` bodies)
    when ``it`` is a global or closed-over iterator.

    ## Why is this bad?
    The iterator advances once, at trace time: every step of a ``fori_loop`` or every
    call of a jitted function sees the same element ("the batch value is always the same",
    jax-ml/jax#3567).

    ## Example
    ```python
    it = iter(range(10))
    total = lax.fori_loop(0, 10, lambda i, x: x + next(it), 0)
    ```

    ## Use instead
    ```python
    xs = jnp.arange(10)
    total = lax.fori_loop(0, 10, lambda i, x: x + xs[i], 0)
    ```

    ## Fix safety
    No fix.
    """

    CODE = "JX108"
    NAME = "iterator-consumed-in-traced-code"
    MESSAGE = ("`next({name})` advances the iterator once at trace time, so every step sees the same element; "
               "pass the data in as arrays")
    VALID = [
        "import jax\n@jax.jit\ndef f(tree):\n    first = next(iter(tree))\n    return first",
        "import jax\ndef host(batches):\n    return next(batches)",
    ]
    INVALID = [
        "from jax import lax\nit = iter(range(10))\ntotal = lax.fori_loop(0, 10, lambda i, x: x + next(it), 0)",
        "import jax\ndef train(data):\n    batches = iter(data)\n    @jax.jit\n    def step(w):\n"
        "        return w + next(batches)\n    return step",
    ]

    def visit_Call(self, node: ast.Call, ctx: TracedContext) -> None:
        if ctx.builtin(node.func) != "next" or not node.args:
            return
        arg = node.args[0]
        if isinstance(arg, ast.Name) and ctx.is_outer(arg.id):
            ctx.report(node, self.MESSAGE.format(name=arg.id))
