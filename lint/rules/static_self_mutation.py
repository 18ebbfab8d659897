"""JX306: a jitted method with static ``self`` reads attributes that other methods change."""

from __future__ import annotations

import ast

from flaxify.lint.project import ClassInfo, FunctionInfo
from flaxify.lint.rule import ModuleContext, Rule
from flaxify.lint.rules.jit_method_self import JitMethodWithoutStaticSelf

_SETUP = frozenset({"__init__", "__post_init__", "__new__", "setup"})


class StaticSelfMutated(Rule):
    """
    ## What it does
    Flags ``self.attr`` read inside a method jitted with ``static_argnums=0`` when another
    method (not ``__init__``) assigns ``self.attr``.

    ## Why is this bad?
    A static ``self`` is a cache key by identity: after ``c.mul = False`` the next call hits
    the cache and silently returns the result compiled for the old value (6, 6 instead of 6, 3).

    ## Example
    ```python
    class C:
        def __init__(self, mul):
            self.mul = mul
        def disable(self):
            self.mul = False
        @partial(jax.jit, static_argnums=0)
        def calc(self, y):
            return y * 2 if self.mul else y
    ```

    ## Use instead
    ```python
    @partial(jax.jit, static_argnames="mul")
    def calc(y, mul):
        return y * 2 if mul else y
    ```
    or make the class an immutable pytree (``flax.struct.dataclass``).

    ## Fix safety
    No fix.
    """

    CODE = "JX306"
    NAME = "static-self-mutated"
    SCOPE = "module"
    MESSAGE = ("`self.{attr}` is read by a jitted method with static `self`, but `{other}` changes it: later calls "
               "reuse the compiled result for the old value; pass it as an argument")
    VALID = [
        "import jax\nfrom functools import partial\nclass C:\n    def __init__(self, mul):\n        self.mul = mul\n"
        "    @partial(jax.jit, static_argnums=0)\n    def calc(self, y):\n        return y * 2 if self.mul else y",
    ]
    INVALID = [
        "import jax\nfrom functools import partial\nclass C:\n    def __init__(self, mul):\n        self.mul = mul\n"
        "    def disable(self):\n        self.mul = False\n    @partial(jax.jit, static_argnums=0)\n"
        "    def calc(self, y):\n        return y * 2 if self.mul else y",
        "import jax\nfrom functools import partial\nclass C:\n    scale = 1.0\n    def set_scale(self, s):\n"
        "        self.scale = s\n    @partial(jax.jit, static_argnums=(0,))\n    def f(self, y):\n"
        "        return y * self.scale",
    ]
    VALID.append("import jax\nclass C:\n    def set(self, v):\n        self.v = v\n    def f(self, y):\n        return y * self.v")

    def check_module(self, ctx: ModuleContext) -> None:
        if "static_argnums" not in ctx.module.source:
            return
        classes = {id(fn.cls): fn.cls for fn in ctx.module.all_functions if fn.cls is not None}
        for cls in classes.values():
            assert cls is not None
            self._check_class(cls, ctx)

    def _check_class(self, cls: ClassInfo, ctx: ModuleContext) -> None:
        changed: dict[str, str] = {}
        for name, method in cls.methods.items():
            if name not in _SETUP:
                for attr in _assigned_self_attrs(method):
                    changed.setdefault(attr, name)
        if not changed:
            return
        for method in cls.methods.values():
            if not self._jitted_with_static_self(method, ctx):
                continue
            for node in ast.walk(method.node):
                if (isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load)
                        and isinstance(node.value, ast.Name) and node.value.id == "self" and node.attr in changed):
                    ctx.report(node, self.MESSAGE.format(attr=node.attr, other=changed[node.attr]))

    @staticmethod
    def _jitted_with_static_self(method: FunctionInfo, ctx: ModuleContext) -> bool:
        for deco in getattr(method.node, "decorator_list", []):
            options = JitMethodWithoutStaticSelf._jit_options(deco, ctx)
            if options and JitMethodWithoutStaticSelf._self_static(options, method.positional[:1]):
                return True
        return False


def _assigned_self_attrs(method: FunctionInfo) -> set[str]:
    found: set[str] = set()
    for target, _, how in method.facts:
        if how in ("assign", "aug") and isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name):
            if target.value.id == "self":
                found.add(target.attr)
    return found
