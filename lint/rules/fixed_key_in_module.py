"""JX402: a fixed PRNG key inside a Flax or Haiku module."""

from __future__ import annotations

import ast

from flaxify.lint.rule import Rule, TracedContext

KEY_MAKERS = frozenset({"jax.random.PRNGKey", "jax.random.key"})


class FixedKeyInModule(Rule):
    """
    ## What it does
    Flags ``jax.random.PRNGKey(0)`` / ``jax.random.key(seed)`` built from a constant inside a
    Flax module method or a Haiku-transformed function.

    ## Why is this bad?
    The key is the same on every call: dropout masks and noise repeat every step, silently.

    ## Example
    ```python
    class M(nn.Module):
        @nn.compact
        def __call__(self, x):
            key = jax.random.PRNGKey(0)
            return x * jax.random.bernoulli(key, 0.9, x.shape)
    ```

    ## Use instead
    ```python
    class M(nn.Module):
        @nn.compact
        def __call__(self, x):
            key = self.make_rng("dropout")  # Haiku: hk.next_rng_key()
            return x * jax.random.bernoulli(key, 0.9, x.shape)
    ```

    ## Fix safety
    No fix: the RNG stream name has to be chosen and passed to ``apply(rngs=...)``.
    """

    CODE = "JX402"
    NAME = "fixed-key-in-module"
    MESSAGE = "a constant PRNG key gives the same random numbers on every call; use `{use}`"
    VALID = [
        "import jax\nimport flax.linen as nn\nclass M(nn.Module):\n    @nn.compact\n    def __call__(self, x):\n"
        "        key = self.make_rng('dropout')\n        return x + jax.random.normal(key, x.shape)",
        "import jax\nkey = jax.random.PRNGKey(0)",
    ]
    INVALID = [
        "import jax\nimport flax.linen as nn\nclass M(nn.Module):\n    @nn.compact\n    def __call__(self, x):\n"
        "        key = jax.random.PRNGKey(0)\n        return x + jax.random.normal(key, x.shape)",
        "import jax\nimport haiku as hk\ndef forward(x):\n    key = jax.random.key(42)\n"
        "    return hk.Linear(2)(x) + jax.random.normal(key, (2,))\nnet = hk.transform(forward)",
    ]

    def visit_Call(self, node: ast.Call, ctx: TracedContext) -> None:
        if ctx.qualname(node.func) not in KEY_MAKERS or not node.args:
            return
        if ctx.taint(node.args[0]) or not self._constant(node.args[0], ctx):
            return
        if "linen" in ctx.flavors:
            ctx.report(node, self.MESSAGE.format(use="self.make_rng('<stream>')"))
        elif "haiku" in ctx.flavors:
            ctx.report(node, self.MESSAGE.format(use="hk.next_rng_key()"))

    @staticmethod
    def _constant(arg: ast.expr, ctx: TracedContext) -> bool:
        if isinstance(arg, ast.Constant):
            return True
        return isinstance(arg, ast.Name) and arg.id not in ctx.fn.locals and arg.id.isupper()
