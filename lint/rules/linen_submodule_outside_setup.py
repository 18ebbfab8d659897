"""JX403: creating a Linen submodule outside ``setup`` and ``@nn.compact``."""

from __future__ import annotations

import ast

from flaxify.lint.project import ClassInfo
from flaxify.lint.rule import Rule, TracedContext
from flaxify.lint.transforms import LINEN_COMPACT

# nowrap helpers run from setup; compact_name_scope methods may create submodules like @compact.
EXEMPT = frozenset({"flax.linen.nowrap", "flax.linen.compact_name_scope", "staticmethod", "classmethod"})


class LinenSubmoduleOutsideSetup(Rule):
    """
    ## What it does
    Flags ``nn.Dense(...)`` (any Linen module class) constructed in a Linen method that is
    neither ``setup`` nor decorated with ``@nn.compact`` (or ``@nn.compact_name_scope``).

    ## Why is this bad?
    ``AssignSubModuleError: Submodule Dense must be defined in `setup()` or in a method
    wrapped in `@compact```.

    ## Example
    ```python
    class M(nn.Module):
        def setup(self):
            self.a = nn.Dense(2)
        def __call__(self, x):
            return nn.Dense(2)(self.a(x))
    ```

    ## Use instead
    ```python
    class M(nn.Module):
        def setup(self):
            self.a = nn.Dense(2)
            self.b = nn.Dense(2)
        def __call__(self, x):
            return self.b(self.a(x))
    ```

    ## Fix safety
    No fix.
    """

    CODE = "JX403"
    NAME = "linen-submodule-outside-setup"
    MESSAGE = ("`{name}` is created outside `setup` and `@nn.compact` (AssignSubModuleError); define it in `setup` "
               "or mark the method `@nn.compact`")
    VALID = [
        "import flax.linen as nn\nclass M(nn.Module):\n    @nn.compact\n    def __call__(self, x):\n"
        "        return nn.Dense(2)(x)",
        "import flax.linen as nn\nclass M(nn.Module):\n    def setup(self):\n        self.a = nn.Dense(2)\n"
        "    @nn.compact_name_scope\n    def decode(self, z):\n        return nn.Dense(2)(self.a(z))",
        "import flax.linen as nn\nclass M(nn.Module):\n    def setup(self):\n        self.d = nn.Dense(2)\n"
        "    def __call__(self, x):\n        return self.d(x)",
    ]
    INVALID = [
        "import flax.linen as nn\nclass M(nn.Module):\n    def setup(self):\n        self.a = nn.Dense(2)\n"
        "    def __call__(self, x):\n        return nn.Dense(2)(self.a(x))",
        "import flax.linen as nn\nclass Block(nn.Module):\n    @nn.compact\n    def __call__(self, x):\n"
        "        return x\nclass M(nn.Module):\n    def __call__(self, x):\n        return Block()(x)",
    ]

    def visit_Call(self, node: ast.Call, ctx: TracedContext) -> None:
        fn = ctx.fn
        if not ctx.linen_class() or fn.name in ("setup", "__post_init__"):
            return
        decorators = {ctx.qualname(d) for d in getattr(fn.node, "decorator_list", [])}
        if LINEN_COMPACT in decorators or decorators & EXEMPT:
            return
        name = ctx.qualname(node.func)
        if name is None:
            return
        if name.startswith("flax.linen.") and name.rpartition(".")[2][:1].isupper():
            last = name.rpartition(".")[2]
            if last not in ("Module", "Partitioned", "LogicallyPartitioned", "Variable"):
                ctx.report(node, self.MESSAGE.format(name=ast.unparse(node.func)))
            return
        found = ctx.analysis.project.lookup(name, ctx.module)
        if isinstance(found, ClassInfo) and ctx.analysis.framework(found) == "linen":
            ctx.report(node, self.MESSAGE.format(name=ast.unparse(node.func)))
