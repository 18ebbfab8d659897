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
        "import jax\nimport flax.linen as nn\nclass M(nn.Module):\n    def setup(self):\n"
        "        self.scale = self.variable('q', 'scale', nn.initializers.ones, jax.random.PRNGKey(0), (1,))\n"
        "    def __call__(self, x):\n        return x * self.scale.value",
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
        if not self._sampled(node, ctx):
            return  # e.g. a fixed key handed to a deterministic initializer: harmless
        if "linen" in ctx.flavors:
            ctx.report(node, self.MESSAGE.format(use="self.make_rng('<stream>')"))
        elif "haiku" in ctx.flavors:
            ctx.report(node, self.MESSAGE.format(use="hk.next_rng_key()"))

    @staticmethod
    def _sampled(key_call: ast.Call, ctx: TracedContext) -> bool:
        """The fixed key (or the name it is bound to) is the key argument of a ``jax.random`` draw."""
        names = {t.id for t, v, _ in ctx.fn.facts if v is key_call and isinstance(t, ast.Name)}
        for call in ctx.fn.calls:
            name = ctx.qualname(call.func) or ""
            if not name.startswith("jax.random.") or name in KEY_MAKERS or not call.args:
                continue
            key = call.args[0]
            if key is key_call or (isinstance(key, ast.Name) and key.id in names):
                return True
        return False

    @staticmethod
    def _constant(arg: ast.expr, ctx: TracedContext) -> bool:
        if isinstance(arg, ast.Constant):
            return True
        return isinstance(arg, ast.Name) and arg.id not in ctx.fn.locals and arg.id.isupper()
