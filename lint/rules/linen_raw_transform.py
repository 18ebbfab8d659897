"""JX404: raw JAX transforms over Linen submodules inside a Linen module."""

from __future__ import annotations

import ast

from flaxify.lint.project import ClassInfo
from flaxify.lint.rule import Rule, TracedContext

LINEN_TWINS = {"jax.vmap": "nn.vmap", "jax.lax.scan": "nn.scan", "jax.checkpoint": "nn.remat",
               "jax.remat": "nn.remat", "jax.jit": "nn.jit", "jax.lax.cond": "nn.cond",
               "jax.lax.while_loop": "nn.while_loop", "jax.lax.map": "nn.map_variables"}


class RawJaxTransformInLinen(Rule):
    """
    ## What it does
    Inside a Flax Linen module method, flags ``jax.vmap``/``jax.lax.scan``/``jax.checkpoint``...
    applied to a Linen submodule (``nn.Dense(2)``, ``self.dense``) or to a function that
    calls one.

    ## Why is this bad?
    "Jax transforms and Flax models cannot be mixed" (``JaxTransformError``): parameters and
    RNGs live in the module's scope, which raw transforms do not lift; mutations can be lost.
    Simple cases still run (the parameters are shared over the mapped axis), so this rule is off
    by default: select it to enforce the lifted transforms.

    ## Example
    ```python
    class M(nn.Module):
        @nn.compact
        def __call__(self, xs):
            return jax.vmap(nn.Dense(2))(xs)
    ```

    ## Use instead
    ```python
    class M(nn.Module):
        @nn.compact
        def __call__(self, xs):
            return nn.vmap(nn.Dense, variable_axes={"params": None}, split_rngs={"params": False})(2)(xs)
    ```

    ## Fix safety
    No fix.
    """

    CODE = "JX404"
    NAME = "raw-jax-transform-in-linen"
    DEFAULT = False  # simple cases run fine (shared parameters); opt in to enforce the lifted transforms
    MESSAGE = "`{raw}` over Linen submodules does not lift their variables; use the lifted `{twin}`"
    VALID = [
        "import jax\nimport flax.linen as nn\nclass M(nn.Module):\n    @nn.compact\n    def __call__(self, xs):\n"
        "        return jax.vmap(lambda x: x * 2)(xs)",
    ]
    INVALID = [
        "import jax\nimport flax.linen as nn\nclass M(nn.Module):\n    @nn.compact\n    def __call__(self, xs):\n"
        "        return jax.vmap(nn.Dense(2))(xs)",
        "import jax\nimport flax.linen as nn\nclass M(nn.Module):\n    def setup(self):\n        self.d = nn.Dense(2)\n"
        "    def __call__(self, xs):\n        return jax.vmap(lambda x: self.d(x))(xs)",
    ]
    VALID.append("import jax\nimport flax.linen as nn\ndef f(xs):\n    return jax.vmap(lambda x: x)(xs)")

    def visit_Call(self, node: ast.Call, ctx: TracedContext) -> None:
        if "linen" not in ctx.flavors or not node.args:
            return
        raw = ctx.qualname(node.func) or ""
        twin = LINEN_TWINS.get(raw)
        if twin is None:
            return
        slot = 1 if raw == "jax.lax.cond" else (1 if raw == "jax.lax.while_loop" else 0)
        if len(node.args) > slot and self._uses_linen(node.args[slot], ctx):
            ctx.report(node, self.MESSAGE.format(raw=raw.replace("jax.lax.", "lax."), twin=twin))

    def _uses_linen(self, arg: ast.expr, ctx: TracedContext) -> bool:
        if isinstance(arg, ast.Call):
            return self._constructs_linen(arg, ctx)
        if isinstance(arg, ast.Attribute) and isinstance(arg.value, ast.Name) and arg.value.id == "self":
            return True  # a submodule (or bound method) of the module
        target = ctx.analysis.resolve(arg, ctx.fn, ctx.module)
        if target is None:
            return False
        for call in target.fn.calls:
            func = call.func
            if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == "self":
                return True
            if self._constructs_linen(call, ctx):
                return True
        return False

    @staticmethod
    def _constructs_linen(call: ast.Call, ctx: TracedContext) -> bool:
        name = ctx.qualname(call.func) or ""
        if name.startswith("flax.linen.") and name.rpartition(".")[2][:1].isupper():
            return True
        found = ctx.analysis.project.lookup(name, ctx.module) if name else None
        return isinstance(found, ClassInfo) and ctx.analysis.framework(found) == "linen"
