"""JX211: asking for float64 in traced code of a project that never enables x64."""

from __future__ import annotations

import ast

from flaxify.lint.analysis import Analysis
from flaxify.lint.rule import Rule, TracedContext

FLOAT64 = frozenset({"jax.numpy.float64", "numpy.float64"})
# Keywords that request a dtype, on the APIs that build arrays (checked: float32 comes out).
# Not jax.ShapeDtypeStruct and other specs, which keep float64 as written.
DTYPE_KEYWORDS = frozenset({"dtype", "param_dtype", "new_dtype"})
ARRAY_APIS = ("jax.numpy.", "jax.random.", "jax.nn.", "jax.lax.", "flax.linen.")
# Any spelling of the flag: jax.config.update("jax_enable_x64", True), JAX_ENABLE_X64=1,
# jax.experimental.enable_x64(), --jax_enable_x64.
X64_MARKER = "enable_x64"


class Float64WithoutX64(Rule):
    """
    ## What it does
    Flags ``dtype=jnp.float64`` (or ``np.float64``, ``"float64"``; also ``param_dtype=``,
    ``new_dtype=``) passed to ``jax.numpy``, ``jax.random``, ``jax.nn``, ``jax.lax`` or ``flax.linen``, ``jnp.float64(...)``, and ``x.astype(jnp.float64)`` on a traced value, in
    traced code, when no linted file mentions ``enable_x64`` (``jax.config.update("jax_enable_x64",
    True)``, ``JAX_ENABLE_X64``, ``jax.experimental.enable_x64``).

    Off by default (the reference grades it an optional info-level rule): x64 can also be enabled
    by the ``JAX_ENABLE_X64`` environment variable, outside the code. Select ``JX211`` in projects
    that do not.

    ## Why is this bad?
    Without x64, JAX silently computes in float32: ``UserWarning: Explicitly requested dtype
    float64 requested in zeros is not available, and will be truncated to dtype float32`` (once
    per call site), and the result's dtype is ``float32``.

    ## Example
    ```python
    @jax.jit
    def f(x):
        return jnp.cumsum(x.astype(jnp.float64))
    ```

    ## Use instead
    ```python
    jax.config.update("jax_enable_x64", True)  # at program start, if float64 is needed

    @jax.jit
    def f(x):
        return jnp.cumsum(x.astype(jnp.float64))
    ```
    or ask for ``jnp.float32``, which is what runs anyway.

    ## Fix safety
    No fix: enabling x64 and writing float32 are both valid repairs; only the author knows which.
    """

    CODE = "JX211"
    NAME = "float64-without-x64"
    DEFAULT = False
    MESSAGE = ("`{what}` is float32 at run time: this project never enables `jax_enable_x64`, so JAX truncates "
               "float64 to float32; enable x64 at startup (`jax.config.update(\"jax_enable_x64\", True)`) "
               "or write float32")
    VALID = [
        "import jax\nimport jax.numpy as jnp\njax.config.update('jax_enable_x64', True)\n@jax.jit\n"
        "def f(x):\n    return x.astype(jnp.float64)",
        "import jax\nimport jax.numpy as jnp\nimport numpy as np\n@jax.jit\ndef f(x):\n"
        "    table = np.zeros(3, dtype=np.float64)\n    return x + jnp.zeros(2, dtype=jnp.float32) + table.sum()",
        "import jax\nimport jax.numpy as jnp\ndef host(x):\n    return jnp.zeros(2, dtype=jnp.float64) + x",
        "import jax\nimport jax.numpy as jnp\n@jax.jit\ndef f(x):\n"
        "    spec = jax.ShapeDtypeStruct(x.shape, dtype=jnp.float64)\n    return x, spec.shape",
    ]
    INVALID = [
        "import jax\nimport jax.numpy as jnp\n@jax.jit\ndef f(x):\n    return jnp.cumsum(x.astype(jnp.float64))",
        "import jax\nimport jax.numpy as jnp\n@jax.jit\ndef f(x):\n    return x + jnp.zeros(2, dtype='float64')",
        "import jax.numpy as jnp\nimport flax.linen as nn\nclass M(nn.Module):\n    @nn.compact\n"
        "    def __call__(self, x):\n        return nn.Dense(2, param_dtype=jnp.float64)(x) * jnp.float64(0.5)",
    ]

    def __init__(self) -> None:
        self._x64: dict[int, bool] = {}

    def visit_Call(self, node: ast.Call, ctx: TracedContext) -> None:
        if not (self._mentions_float64(ctx) and not self._x64_enabled(ctx.analysis)):
            return
        func = node.func
        name = ctx.qualname(func) if isinstance(func, (ast.Name, ast.Attribute)) else None
        if name == "jax.numpy.float64":
            ctx.report(node, self.MESSAGE.format(what=ctx.segment(node)))
            return
        if isinstance(func, ast.Attribute) and func.attr == "astype" and name is None:
            dtype = node.args[0] if node.args else next((k.value for k in node.keywords if k.arg == "dtype"), None)
            # Only on a traced value: `np_array.astype(np.float64)` on the host really is float64.
            if dtype is not None and self._is_float64(dtype, ctx) and ctx.taint(func.value):
                ctx.report(node, self.MESSAGE.format(what=ctx.segment(node)))
            return
        if name is None or not name.startswith(ARRAY_APIS):
            return
        for keyword in node.keywords:
            if keyword.arg in DTYPE_KEYWORDS and self._is_float64(keyword.value, ctx):
                ctx.report(keyword.value, self.MESSAGE.format(what=f"{keyword.arg}={ctx.segment(keyword.value)}"))

    @staticmethod
    def _is_float64(node: ast.expr, ctx: TracedContext) -> bool:
        if isinstance(node, ast.Constant):
            return node.value == "float64"
        return isinstance(node, (ast.Name, ast.Attribute)) and ctx.qualname(node) in FLOAT64

    @staticmethod
    def _mentions_float64(ctx: TracedContext) -> bool:
        return "float64" in ctx.module.source

    def _x64_enabled(self, analysis: Analysis) -> bool:
        """True when any linted file mentions enable_x64 (once per run; ``-j`` keeps those files together)."""
        key = id(analysis)
        if key not in self._x64:
            self._x64[key] = any(X64_MARKER in module.source.lower() for module in analysis.project.modules)
        return self._x64[key]
