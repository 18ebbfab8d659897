"""JX401: assigning ``self`` attributes of a Flax Linen module outside ``setup``."""

from __future__ import annotations

import ast

from flaxify.lint.rule import Rule, TracedContext

ALLOWED = frozenset({"setup", "__post_init__", "__init__"})


class LinenAttributeMutation(Rule):
    """
    ## What it does
    Flags ``self.x = ...`` in a Flax Linen module method other than ``setup`` (e.g. in
    ``@nn.compact __call__``), and assigning a dataclass field (``self.features = 3``)
    inside ``setup``.

    ## Why is this bad?
    Linen modules are frozen outside ``setup``: ``SetAttributeFrozenModuleError: Can't set
    cache=... Module instance is frozen outside of setup method``; fields are frozen even in
    ``setup`` (``SetAttributeInModuleSetupError``).

    ## Example
    ```python
    class M(nn.Module):
        @nn.compact
        def __call__(self, x):
            self.cache = x
            return nn.Dense(3)(x)
    ```

    ## Use instead
    ```python
    class M(nn.Module):
        @nn.compact
        def __call__(self, x):
            self.sow("intermediates", "cache", x)  # or self.variable("cache", ...)
            return nn.Dense(3)(x)
    ```

    ## Fix safety
    No fix.
    """

    CODE = "JX401"
    NAME = "linen-attribute-mutation"
    MESSAGE = ("Linen modules are frozen outside `setup`: `self.{attr} = ...` raises SetAttributeFrozenModuleError; "
               "define it in `setup`, or use `self.variable`/`self.sow` for state")
    FIELD_MESSAGE = ("`self.{attr}` is a dataclass field and frozen even in `setup` (SetAttributeInModuleSetupError); "
                     "pass it at construction")
    VALID = [
        "import flax.linen as nn\nclass M(nn.Module):\n    features: int = 3\n    def setup(self):\n"
        "        self.dense = nn.Dense(self.features)\n    def __call__(self, x):\n        return self.dense(x)",
        "import flax.linen as nn\nclass M(nn.Module):\n    @nn.compact\n    def __call__(self, x):\n"
        "        self.sow('intermediates', 'h', x)\n        return x",
        "import dataclasses\nimport flax.linen as nn\nclass M(nn.Module):\n    w: object = dataclasses.field(init=False)\n"
        "    def setup(self):\n        self.w = self.param('w', nn.initializers.zeros, (2,))\n"
        "    def __call__(self, x):\n        return x * self.w",
    ]
    INVALID = [
        "import flax.linen as nn\nclass M(nn.Module):\n    @nn.compact\n    def __call__(self, x):\n"
        "        self.cache = x\n        return nn.Dense(3)(x)",
        "import flax.linen as nn\nclass M(nn.Module):\n    features: int = 2\n    def setup(self):\n"
        "        self.features = 3\n    def __call__(self, x):\n        return x",
    ]

    def visit_Assign(self, node: ast.Assign, ctx: TracedContext) -> None:
        for target in node.targets:
            self._check(target, ctx)

    def visit_AugAssign(self, node: ast.AugAssign, ctx: TracedContext) -> None:
        self._check(node.target, ctx)

    def _check(self, target: ast.expr, ctx: TracedContext) -> None:
        if not (isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name)
                and target.value.id == "self" and ctx.linen_class()):
            return
        cls = ctx.fn.cls
        assert cls is not None
        if ctx.fn.name not in ALLOWED:
            ctx.report(target, self.MESSAGE.format(attr=target.attr))
        elif ctx.fn.name == "setup" and target.attr in cls.fields and not _init_false(cls.fields[target.attr]):
            ctx.report(target, self.FIELD_MESSAGE.format(attr=target.attr))


def _init_false(value: ast.expr | None) -> bool:
    """``x: Array = dataclasses.field(init=False)`` declares an attribute that ``setup`` assigns."""
    return isinstance(value, ast.Call) and any(
        k.arg == "init" and isinstance(k.value, ast.Constant) and k.value.value is False for k in value.keywords
    )
