"""JX501: Haiku modules under raw JAX transforms inside ``hk.transform``."""

from __future__ import annotations

import ast

from flaxify.lint.project import ClassInfo, FunctionInfo
from flaxify.lint.rule import Rule, TracedContext
from flaxify.lint.transforms import HAIKU_TWINS


class HaikuUnderRawJaxTransform(Rule):
    """
    ## What it does
    Inside a Haiku-transformed function or ``hk.Module``, flags ``jax.vmap``,
    ``jax.lax.scan``, ``jax.checkpoint``, ``jax.lax.cond``... applied to a function that uses
    Haiku modules or ``hk.get_parameter``/``hk.next_rng_key``.

    ## Why is this bad?
    Haiku keeps parameters and RNG state in Python frames; a raw JAX transform traces them
    in its own scope and leaks tracers (``UnexpectedTracerError ... inside a Haiku
    transformed function``, dm-haiku#214). Haiku's lifted twins thread the state correctly.

    ## Example
    ```python
    def forward(xs):
        layer = hk.Linear(4)
        return jax.vmap(layer)(xs)
    ```

    ## Use instead
    ```python
    def forward(xs):
        layer = hk.Linear(4)
        return hk.vmap(layer, split_rng=False)(xs)
    ```

    ## Fix safety
    No fix: ``hk.vmap`` needs an explicit ``split_rng``.
    """

    CODE = "JX501"
    NAME = "haiku-under-raw-jax-transform"
    MESSAGE = "`{raw}` over Haiku modules inside `hk.transform` can leak tracers; use `{twin}`"
    VALID = [
        "import jax\nimport haiku as hk\ndef forward(xs):\n    layer = hk.Linear(4)\n"
        "    return hk.vmap(layer, split_rng=False)(xs)\nnet = hk.transform(forward)",
        "import jax\nimport haiku as hk\ndef forward(xs):\n    return jax.vmap(lambda x: x * 2)(xs)\n"
        "net = hk.transform(forward)",
    ]
    INVALID = [
        "import jax\nimport haiku as hk\ndef forward(xs):\n    layer = hk.Linear(4)\n    return jax.vmap(layer)(xs)\n"
        "net = hk.transform(forward)",
        "import jax\nimport haiku as hk\ndef forward(xs):\n    def body(c, x):\n        return c, hk.Linear(2)(x)\n"
        "    return jax.lax.scan(body, 0, xs)\nnet = hk.transform(forward)",
    ]

    def visit_Call(self, node: ast.Call, ctx: TracedContext) -> None:
        if "haiku" not in ctx.flavors or not node.args:
            return
        raw = ctx.qualname(node.func)
        twin = HAIKU_TWINS.get(raw or "")
        if twin is None:
            return
        slot = 2 if raw == "jax.lax.fori_loop" else (1 if raw in ("jax.lax.cond", "jax.lax.switch") else 0)
        if len(node.args) <= slot:
            return
        if self._uses_haiku(node.args[slot], ctx):
            ctx.report(node, self.MESSAGE.format(raw=raw.replace("jax.lax.", "lax."), twin=twin))  # type: ignore[union-attr]

    def _uses_haiku(self, arg: ast.expr, ctx: TracedContext) -> bool:
        if isinstance(arg, ast.Call):
            return self._is_haiku_construction(arg, ctx)
        if isinstance(arg, ast.Name):
            for target, value, _ in ctx.fn.facts:
                if isinstance(target, ast.Name) and target.id == arg.id and isinstance(value, ast.Call):
                    if self._is_haiku_construction(value, ctx):
                        return True
        target = ctx.analysis.resolve(arg, ctx.fn, ctx.module)
        return target is not None and self._body_uses_haiku(target.fn, ctx)

    def _is_haiku_construction(self, call: ast.Call, ctx: TracedContext, scope: FunctionInfo | None = None) -> bool:
        name = ctx.qualname(call.func, scope)
        if name is None:
            return False
        if name.startswith("haiku."):
            return True
        found = ctx.analysis.project.lookup(name, ctx.module)
        return isinstance(found, ClassInfo) and ctx.analysis.framework(found) == "haiku"

    def _body_uses_haiku(self, fn: FunctionInfo, ctx: TracedContext) -> bool:
        for call in fn.calls:
            if self._is_haiku_construction(call, ctx, fn):
                return True
            inner = call.func
            if isinstance(inner, ast.Name) and inner.id not in fn.locals and fn.parent is not None:
                if self._uses_haiku(inner, ctx):
                    return True
        return False
