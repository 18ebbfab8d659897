"""JX206: NumPy (not ``jax.numpy``) functions on traced arrays."""

from __future__ import annotations

import ast

from flaxify.lint.model import Applicability
from flaxify.lint.rule import Invalid, Rule, TracedContext
from flaxify.lint.rules._common import traced_args

# numpy attributes that are not array operations (dtypes, constants, introspection).
HARMLESS = frozenset({"dtype", "finfo", "iinfo", "issubdtype", "result_type", "promote_types", "shape", "ndim",
                      "size", "prod", "isscalar", "can_cast", "broadcast_shapes", "errstate", "printoptions"})


class NumpyOnTracedValue(Rule):
    """
    ## What it does
    Flags calls such as ``np.sin(x)`` and ``np.asarray(x)`` where ``x`` is traced, and
    indexing a NumPy array with a traced index.

    ## Why is this bad?
    NumPy needs a concrete buffer: ``TracerArrayConversionError: The numpy.ndarray
    conversion method __array__() was called on traced array``.

    ## Example
    ```python
    @jax.jit
    def f(x):
        return np.sin(x)
    ```

    ## Use instead
    ```python
    @jax.jit
    def f(x):
        return jnp.sin(x)
    ```
    NumPy on static values (``np.prod(x.shape)``, ``np.pi``, ``np.float32``) is fine.

    ## Fix safety
    Unsafe: ``np.f`` -> ``jnp.f`` when ``jax.numpy`` is imported as ``jnp`` and has the same
    function; results can differ in dtype (x64 disabled) and in corner cases.
    """

    CODE = "JX206"
    NAME = "numpy-on-traced-value"
    MESSAGE = ("`{name}` on a traced array raises TracerArrayConversionError; use `{jnp}` "
               "(or keep the NumPy work on static values)")
    VALID = [
        "import jax, numpy as np\n@jax.jit\ndef f(x):\n    return x * np.prod(x.shape) + np.pi",
        "import jax, numpy as np\n@jax.jit\ndef f(x):\n    return x.astype(np.float32)",
        "import numpy as np\ndef host(x):\n    return np.sin(x)",
    ]
    INVALID = [
        Invalid("import jax, numpy as np, jax.numpy as jnp\n@jax.jit\ndef f(x):\n    return np.sin(x)",
                "import jax, numpy as np, jax.numpy as jnp\n@jax.jit\ndef f(x):\n    return jnp.sin(x)"),
        "import jax, numpy as np\n@jax.jit\ndef f(x):\n    return np.asarray(x) + 1",
    ]

    def visit_Call(self, node: ast.Call, ctx: TracedContext) -> None:
        name = ctx.qualname(node.func)
        if not name or not name.startswith("numpy.") or name.count(".") != 1:
            return
        attr = name.partition(".")[2]
        if attr in HARMLESS or attr[:1].isupper() or not traced_args(node, ctx):
            return
        fix = None
        if ctx.module.imports.bound.get("jnp") == "jax.numpy" and isinstance(node.func, ast.Attribute):
            fix = ctx.replace(node.func, f"jnp.{attr}", f"Use `jnp.{attr}`", Applicability.UNSAFE)
        ctx.report(node, self.MESSAGE.format(name=f"np.{attr}", jnp=f"jnp.{attr}"), fix)
