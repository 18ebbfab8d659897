"""JX103: rebinding a global or nonlocal name in traced code."""

from __future__ import annotations

import ast

from flaxify.lint.model import Kind, Taint
from flaxify.lint.rule import Rule, TracedContext
from flaxify.lint.taint import STATIC_FUNCTIONS


class GlobalWriteInTracedCode(Rule):
    """
    ## What it does
    Flags assignments to names declared ``global`` (or ``nonlocal`` to a function outside
    the traced region) in code that JAX traces.

    ## Why is this bad?
    The write happens once, at trace time: a counter stays at 1, and a stored traced value
    becomes a leaked tracer that raises ``UnexpectedTracerError`` when used later.

    ## Example
    ```python
    last = None
    @jax.jit
    def f(x):
        global last
        last = x
        return x + 1
    ```

    ## Use instead
    ```python
    @jax.jit
    def f(x):
        return x + 1, x  # return the value, keep state outside
    ```

    ## Fix safety
    No fix: the state has to be threaded through arguments and return values.
    """

    CODE = "JX103"
    NAME = "global-write-in-traced-code"
    MESSAGE = ("writing `{name}` outside the traced function happens once at trace time and can leak a tracer; "
               "return the value instead")
    VALID = [
        "import jax\ndef wrap(f):\n    treedef = None\n    def inner(x):\n        nonlocal treedef\n"
        "        treedef = jax.tree_util.tree_structure(x)\n        return f(x)\n    return jax.jit(inner)",
        "import jax\ncount = 0\ndef host(x):\n    global count\n    count += 1\n    return x",
        "import jax\n@jax.jit\ndef f(x):\n    count = 1\n    return x + count",
        "import jax\n@jax.jit\ndef f(x):\n    total = 0\n    def add(v):\n        nonlocal total\n"
        "        total = total + v\n    add(x)\n    return total",
    ]
    INVALID = [
        "import jax\nlast = None\n@jax.jit\ndef f(x):\n    global last\n    last = x\n    return x + 1",
        "import jax\ncount = 0\n@jax.jit\ndef f(x):\n    global count\n    count += 1\n    return x",
        "import jax\ndef make():\n    last = None\n    @jax.jit\n    def f(x):\n        nonlocal last\n"
        "        last = x * 2\n        return x\n    return f",
    ]

    def visit_Assign(self, node: ast.Assign, ctx: TracedContext) -> None:
        taint = ctx.taint(node.value)
        if not taint and ctx.kind >= Kind.STAGE and _calls_jax(node.value, ctx):
            taint = Taint.TREE  # under jit every JAX operation is staged, even on constants
        for target in node.targets:
            self._check(target, taint, ctx)

    def visit_AugAssign(self, node: ast.AugAssign, ctx: TracedContext) -> None:
        # A counter (`count += 1`) is the classic case: it only ever counts to 1.
        self._check(node.target, Taint.ARRAY, ctx)

    def visit_AnnAssign(self, node: ast.AnnAssign, ctx: TracedContext) -> None:
        if node.value is not None:
            self._check(node.target, ctx.taint(node.value), ctx)

    def _check(self, target: ast.expr, taint: Taint, ctx: TracedContext) -> None:
        if isinstance(target, (ast.Tuple, ast.List)):
            for elt in target.elts:
                self._check(elt, taint, ctx)
            return
        if not isinstance(target, ast.Name) or not ctx.is_outer(target.id):
            return
        # Capturing static facts at trace time (`nonlocal treedef; treedef = tree_structure(x)`) is a
        # deliberate idiom; only traced values leak. Closures need a certain array to be flagged.
        if target.id in ctx.fn.declared_global and taint or target.id in ctx.fn.declared_nonlocal and taint == Taint.ARRAY:
            ctx.report(target, self.MESSAGE.format(name=target.id))


def _calls_jax(value: ast.expr, ctx: TracedContext) -> bool:
    for node in ast.walk(value):
        if isinstance(node, ast.Call):
            name = ctx.qualname(node.func) or ""
            if name.startswith("jax.") and name not in STATIC_FUNCTIONS:
                return True
    return False
