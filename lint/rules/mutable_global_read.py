"""JX110: reading a module-level variable that is rebound elsewhere."""

from __future__ import annotations

import ast

from flaxify.lint.model import Kind
from flaxify.lint.rule import ModuleContext, Rule, TracedContext


class MutableGlobalRead(Rule):
    """
    ## What it does
    Flags reads of a module-level name, inside jitted code, when that name is assigned more
    than once at module level or rebound through ``global`` in some function.

    ## Why is this bad?
    The value is captured when the function is traced; "subsequent runs may silently use
    the cached value of the globals": after ``g = 10.0`` the jitted function still adds 0.

    ## Example
    ```python
    g = 0.0
    @jax.jit
    def f(x):
        return x + g
    g = 10.0
    ```

    ## Use instead
    ```python
    @jax.jit
    def f(x, g):
        return x + g
    ```
    Constants bound once (``SCALE = 3.0``), imported modules and functions are fine.

    ## Fix safety
    No fix.
    """

    CODE = "JX110"
    NAME = "mutable-global-read"
    MESSAGE = ("`{name}` is a global that is reassigned elsewhere; jit captures the value at trace time and "
               "silently keeps using it — pass it as an argument")
    MIN_KIND = Kind.STAGE
    VALID = [
        "import jax\nSCALE = 3.0\n@jax.jit\ndef f(x):\n    return x * SCALE",
        "import jax\ng = 0.0\ndef host(x):\n    return x + g\ng = 1.0",
    ]
    INVALID = [
        "import jax\ng = 0.0\n@jax.jit\ndef f(x):\n    return x + g\ng = 10.0",
        "import jax\nlr = 0.1\ndef set_lr(v):\n    global lr\n    lr = v\n@jax.jit\ndef step(w, grad):\n"
        "    return w - lr * grad",
    ]

    def visit_Name(self, node: ast.Name, ctx: TracedContext) -> None:
        if not isinstance(node.ctx, ast.Load) or node.id in ctx.fn.locals or node.id in ctx.fn.declared_global:
            return
        if ctx.fn.parent is not None and any(node.id in scope.locals for scope in _parents(ctx)):
            return
        if node.id in ctx.module.imports.bound or node.id not in ctx.module.module_assigned:
            return
        if node.id in _rebound(ctx):
            ctx.report(node, self.MESSAGE.format(name=node.id))


def _parents(ctx: TracedContext):  # type: ignore[no-untyped-def]
    scope = ctx.fn.parent
    while scope is not None:
        yield scope
        scope = scope.parent


def _rebound(ctx: ModuleContext) -> frozenset[str]:
    """Module names bound twice at module level or assigned under ``global`` in a function."""
    return ctx.module.rebound_globals
