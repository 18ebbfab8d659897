"""JX502: Haiku modules or state functions used outside ``hk.transform``."""

from __future__ import annotations

import ast

from flaxify.lint.project import ClassInfo, FunctionInfo
from flaxify.lint.rule import ModuleContext, Rule

STATE_FUNCTIONS = frozenset({"haiku.get_parameter", "haiku.get_state", "haiku.set_state", "haiku.next_rng_key",
                             "haiku.maybe_next_rng_key", "haiku.next_rng_keys", "haiku.reserve_rng_keys"})
NOT_MODULES = ("State", "Policy", "Transformed", "Params", "Protocol", "Context", "Sequence")
# Capitalized names under `haiku` that are not modules and work anywhere (hk.PRNGSequence(key)...).
NOT_MODULE_NAMES = frozenset({"Module", "PRNGSequence", "Initializer", "LSTMState"})
TRANSFORMERS = frozenset({"haiku.transform", "haiku.transform_with_state", "haiku.multi_transform",
                          "haiku.multi_transform_with_state"})
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)


class HaikuOutsideTransform(Rule):
    """
    ## What it does
    Flags creating Haiku modules (``hk.Linear(2)``) or calling ``hk.get_parameter``,
    ``hk.next_rng_key``... at module level, or in the host function that builds the
    ``hk.transform`` but outside the function it transforms.

    ## Why is this bad?
    ``ValueError: All `hk.Module`s must be initialized inside an `hk.transform`.`` and
    ``hk.get_parameter must be used as part of an hk.transform``.

    ## Example
    ```python
    layer = hk.Linear(2)
    def forward(x):
        return layer(x)
    ```

    ## Use instead
    ```python
    def forward(x):
        return hk.Linear(2)(x)
    net = hk.transform(forward)
    ```

    ## Fix safety
    No fix.
    """

    CODE = "JX502"
    NAME = "haiku-outside-transform"
    SCOPE = "module"
    MESSAGE = "`{name}` outside `hk.transform` raises ValueError; create Haiku modules inside the transformed function"
    VALID = [
        "import haiku as hk\ndef forward(x):\n    return hk.Linear(2)(x)\nnet = hk.transform(forward)",
        "import haiku as hk\ninit = hk.initializers.TruncatedNormal(0.02)",
        "import haiku as hk\nimport jax\nrng = hk.PRNGSequence(jax.random.PRNGKey(0))",
    ]
    INVALID = [
        "import haiku as hk\nlayer = hk.Linear(2)",
        "import haiku as hk\ndef build():\n    w = hk.get_parameter('w', (2,), init=hk.initializers.Constant(0.0))\n"
        "    net = hk.transform(lambda x: x * 2)\n    return net, w",
    ]

    def check_module(self, ctx: ModuleContext) -> None:
        if "haiku" not in ctx.module.source:
            return
        self._scan(ctx.tree.body, None, ctx)
        for fn in ctx.module.all_functions:
            if fn.cls is None and self._is_host_builder(fn, ctx):
                body = fn.node.body if isinstance(fn.node.body, list) else [fn.node.body]
                self._scan(body, fn, ctx)

    def _is_host_builder(self, fn: FunctionInfo, ctx: ModuleContext) -> bool:
        if ctx.traced(fn) is not None:
            return False
        return any(ctx.qualname(c.func, fn) in TRANSFORMERS for c in fn.calls)

    def _scan(self, body: list[ast.stmt], scope: FunctionInfo | None, ctx: ModuleContext) -> None:
        stack: list[ast.AST] = list(body)
        while stack:
            node = stack.pop()
            if isinstance(node, _SCOPES):
                continue
            if isinstance(node, ast.Call) and self._needs_transform(node, scope, ctx):
                ctx.report(node, self.MESSAGE.format(name=ast.unparse(node.func)))
            stack.extend(ast.iter_child_nodes(node))

    def _needs_transform(self, call: ast.Call, scope: FunctionInfo | None, ctx: ModuleContext) -> bool:
        name = ctx.qualname(call.func, scope)
        if name is None:
            return False
        if name in STATE_FUNCTIONS:
            return True
        if name.startswith("haiku."):
            last = name.rpartition(".")[2]
            top_level = name.count(".") == 1 or name.startswith("haiku.nets.")
            return (top_level and last[:1].isupper() and not last.endswith(NOT_MODULES)
                    and last not in NOT_MODULE_NAMES)
        found = ctx.analysis.project.lookup(name, ctx.module)
        return isinstance(found, ClassInfo) and ctx.analysis.framework(found) == "haiku"
