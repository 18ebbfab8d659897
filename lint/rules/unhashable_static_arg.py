"""JX304: a list, dict or set passed where a jitted function expects a static argument."""

from __future__ import annotations

import ast

from flaxify.lint.rule import ModuleContext, Rule
from flaxify.lint.transforms import TRANSFORMS

_UNHASHABLE = (ast.List, ast.Dict, ast.Set, ast.ListComp, ast.DictComp, ast.SetComp)


class UnhashableStaticArgument(Rule):
    """
    ## What it does
    Flags calls of a jitted function (decorated, or ``f = jax.jit(g, static_argnums=...)``)
    that pass a list, dict or set literal at a position marked ``static_argnums`` /
    ``static_argnames``.

    ## Why is this bad?
    Static arguments are dictionary keys of the compilation cache: ``ValueError:
    Non-hashable static arguments are not supported``.

    ## Example
    ```python
    f = jax.jit(lambda x, axes: x.sum(axes), static_argnums=1)
    f(x, [0])
    ```

    ## Use instead
    ```python
    f(x, (0,))
    ```

    ## Fix safety
    No fix here (a tuple is usually right, but not always hashable either).
    """

    CODE = "JX304"
    NAME = "unhashable-static-argument"
    SCOPE = "module"
    MESSAGE = "static argument `{name}` must be hashable; a {kind} raises ValueError — pass a tuple"
    VALID = [
        "import jax\nf = jax.jit(lambda x, axes: x.sum(axes), static_argnums=1)\ny = f(1.0, (0,))",
        "import jax\nf = jax.jit(lambda x, axes: x.sum(axes))\ny = f(1.0, [0])",
    ]
    INVALID = [
        "import jax\nf = jax.jit(lambda x, axes: x.sum(axes), static_argnums=1)\ny = f(1.0, [0])",
        "import jax\nfrom functools import partial\n@partial(jax.jit, static_argnames='cfg')\ndef f(x, cfg):\n"
        "    return x\ny = f(1.0, cfg={'a': 1})",
    ]

    def check_module(self, ctx: ModuleContext) -> None:
        if "static_arg" not in ctx.module.source:
            return
        wrappers = self._jitted(ctx)
        if not wrappers:
            return
        for call in [c for fn in ctx.module.all_functions for c in fn.calls] + ctx.module.module_calls:
            if isinstance(call.func, ast.Name) and call.func.id in wrappers:
                self._check(call, *wrappers[call.func.id], ctx)

    def _check(self, call: ast.Call, names: list[str], static: set[str], ctx: ModuleContext) -> None:
        for name, arg in zip(names, call.args):
            if name in static and isinstance(arg, _UNHASHABLE):
                ctx.report(arg, self.MESSAGE.format(name=name, kind=type(arg).__name__.lower()))
        for keyword in call.keywords:
            if keyword.arg in static and isinstance(keyword.value, _UNHASHABLE):
                ctx.report(keyword.value, self.MESSAGE.format(name=keyword.arg,
                                                              kind=type(keyword.value).__name__.lower()))

    def _jitted(self, ctx: ModuleContext) -> dict[str, tuple[list[str], set[str]]]:
        """Module-level jitted names -> (positional parameter names, static parameter names)."""
        found: dict[str, tuple[list[str], set[str]]] = {}
        for name, fn in ctx.module.functions.items():
            for deco in fn.node.decorator_list:  # type: ignore[union-attr]
                options = self._jit_options(deco, ctx)
                if options is not None:
                    found[name] = self._statics(fn.positional, options)
        for stmt in ctx.tree.body:
            if (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name)
                    and isinstance(stmt.value, ast.Call) and stmt.value.args
                    and TRANSFORMS.get(ctx.qualname(stmt.value.func) or "") is TRANSFORMS["jax.jit"]):
                target = stmt.value.args[0]
                params = self._params_of(target, ctx)
                if params is not None:
                    found[stmt.targets[0].id] = self._statics(params, stmt.value.keywords)
        return found

    def _params_of(self, target: ast.expr, ctx: ModuleContext) -> list[str] | None:
        if isinstance(target, ast.Lambda):
            return [a.arg for a in (*target.args.posonlyargs, *target.args.args)]
        if isinstance(target, ast.Name) and target.id in ctx.module.functions:
            return ctx.module.functions[target.id].positional
        return None

    def _jit_options(self, deco: ast.expr, ctx: ModuleContext) -> list[ast.keyword] | None:
        if not isinstance(deco, ast.Call):
            return None
        name = ctx.qualname(deco.func)
        if name == "functools.partial" and deco.args and ctx.qualname(deco.args[0]) == "jax.jit":
            return deco.keywords
        return deco.keywords if name == "jax.jit" else None

    @staticmethod
    def _statics(names: list[str], options: list[ast.keyword]) -> tuple[list[str], set[str]]:
        static: set[str] = set()
        for keyword in options:
            values = keyword.value.elts if isinstance(keyword.value, (ast.Tuple, ast.List)) else [keyword.value]
            consts = [v.value for v in values if isinstance(v, ast.Constant)]
            if keyword.arg == "static_argnums":
                static |= {names[i] for i in consts if isinstance(i, int) and -len(names) <= i < len(names)}
            elif keyword.arg == "static_argnames":
                static |= {v for v in consts if isinstance(v, str)}
        return names, static
