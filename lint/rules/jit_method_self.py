"""JX305: ``@jax.jit`` on a method whose ``self`` is not static."""

from __future__ import annotations

import ast

from flaxify.lint.rule import ModuleContext, Rule
from flaxify.lint.transforms import TRANSFORMS


class JitMethodWithoutStaticSelf(Rule):
    """
    ## What it does
    Flags ``@jax.jit`` (or ``@partial(jax.jit, ...)`` without ``static_argnums=0``) on a method
    of a plain class (one that is not registered as a pytree: no class decorator, no base class).

    ## Why is this bad?
    ``self`` is traced like any argument: ``TypeError: Error interpreting argument to <function
    C.calc> as an abstract array. The problematic value is of type <class 'C'> ... at path self``.

    ## Example
    ```python
    class C:
        @jax.jit
        def calc(self, y):
            return y * self.mul
    ```

    ## Use instead
    ```python
    class C:
        def calc(self, y):
            return _calc(self.mul, y)

    @jax.jit
    def _calc(mul, y):
        return y * mul
    ```
    or register the class as a pytree (``@jax.tree_util.register_pytree_node_class``,
    ``flax.struct.dataclass``).

    ## Fix safety
    No fix.
    """

    CODE = "JX305"
    NAME = "jit-method-without-static-self"
    SCOPE = "module"
    MESSAGE = ("`self` of `{cls}.{method}` is traced like an array and raises TypeError; jit a function of the "
               "fields, or register `{cls}` as a pytree")
    VALID = [
        "import jax\nfrom functools import partial\nclass C:\n    @partial(jax.jit, static_argnums=0)\n"
        "    def calc(self, y):\n        return y * 2",
        "import jax\n@jax.tree_util.register_pytree_node_class\nclass C:\n    @jax.jit\n    def calc(self, y):\n"
        "        return y * 2",
        "import jax\nclass C:\n    @staticmethod\n    @jax.jit\n    def calc(y):\n        return y * 2",
    ]
    INVALID = [
        "import jax\nclass C:\n    def __init__(self, mul):\n        self.mul = mul\n    @jax.jit\n"
        "    def calc(self, y):\n        return y * self.mul",
        "import jax\nfrom functools import partial\nclass C:\n    @partial(jax.jit, static_argnames='n')\n"
        "    def calc(self, y, n):\n        return y * n",
    ]

    def check_module(self, ctx: ModuleContext) -> None:
        if "jit" not in ctx.module.source:
            return
        for fn in ctx.module.all_functions:
            cls = fn.cls
            if cls is None or cls.node.decorator_list or cls.node.bases or not fn.is_method:
                continue
            if any(isinstance(d, ast.Name) and d.id == "classmethod" for d in fn.node.decorator_list):  # type: ignore[union-attr]
                continue
            for deco in fn.node.decorator_list:  # type: ignore[union-attr]
                options = self._jit_options(deco, ctx)
                if options is not None and not self._self_static(options, fn.positional[:1]):
                    ctx.report(deco, self.MESSAGE.format(cls=cls.name, method=fn.name))

    @staticmethod
    def _jit_options(deco: ast.expr, ctx: ModuleContext) -> list[ast.keyword] | None:
        if not isinstance(deco, ast.Call):
            return [] if TRANSFORMS.get(ctx.qualname(deco) or "") is TRANSFORMS["jax.jit"] else None
        name = ctx.qualname(deco.func)
        if name == "functools.partial" and deco.args and ctx.qualname(deco.args[0]) == "jax.jit":
            return deco.keywords
        return deco.keywords if name == "jax.jit" else None

    @staticmethod
    def _self_static(options: list[ast.keyword], first: list[str]) -> bool:
        for keyword in options:
            values = keyword.value.elts if isinstance(keyword.value, (ast.Tuple, ast.List)) else [keyword.value]
            consts = {v.value for v in values if isinstance(v, ast.Constant)}
            if keyword.arg == "static_argnums" and 0 in consts:
                return True
            if keyword.arg == "static_argnames" and first and first[0] in consts:
                return True
        return False
