"""JX107: Python or NumPy random numbers in traced code."""

from __future__ import annotations

import ast

from flaxify.lint.rule import Rule, TracedContext

# Things under numpy.random that build generators or hold state, not draws.
NOT_DRAWS = frozenset({"numpy.random.default_rng", "numpy.random.Generator", "numpy.random.RandomState",
                       "numpy.random.PCG64", "numpy.random.SeedSequence", "numpy.random.seed",
                       "random.Random", "random.seed", "random.SystemRandom"})


class HostRandomnessInTracedCode(Rule):
    """
    ## What it does
    Flags draws from Python's ``random`` module or ``numpy.random`` inside traced code.

    ## Why is this bad?
    The draw happens once at trace time and becomes a constant of the compiled function:
    ``f(0.0), f(0.0), f(0.0)`` return the same "random" number every call.

    ## Example
    ```python
    @jax.jit
    def f(x):
        return x + np.random.normal()
    ```

    ## Use instead
    ```python
    @jax.jit
    def f(x, key):
        return x + jax.random.normal(key)
    ```

    ## Fix safety
    No fix: a PRNG key has to be threaded through.
    """

    CODE = "JX107"
    NAME = "host-randomness-in-traced-code"
    MESSAGE = ("`{name}` draws once at trace time and the number is baked into the compiled function; "
               "use `jax.random` with a key argument")
    VALID = [
        "import jax\n@jax.jit\ndef f(x, key):\n    return x + jax.random.normal(key)",
        "import numpy as np\nimport jax\nNOISE = np.random.normal(size=3)\n@jax.jit\ndef f(x):\n"
        "    return x + NOISE",
        "import jax, random\ndef host():\n    return random.random()",
    ]
    INVALID = [
        "import jax\nimport numpy as np\n@jax.jit\ndef f(x):\n    return x + np.random.normal()",
        "import jax, random\n@jax.jit\ndef f(x):\n    return x * random.random()",
        "import jax\nimport numpy as np\nrng = np.random.default_rng(0)\n@jax.jit\ndef f(x):\n"
        "    return x + rng.normal()",
    ]

    def visit_Call(self, node: ast.Call, ctx: TracedContext) -> None:
        name = ctx.qualname(node.func)
        if name is None:
            name = self._generator_method(node, ctx)
            if name is None:
                return
        elif not name.startswith(("random.", "numpy.random.")) or name in NOT_DRAWS:
            return
        ctx.report(node, self.MESSAGE.format(name=name.replace("numpy.", "np.")))

    def _generator_method(self, node: ast.Call, ctx: TracedContext) -> str | None:
        """``rng.normal()`` where module-level ``rng = np.random.default_rng(...)``."""
        func = node.func
        if not (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name)):
            return None
        if not ctx.is_outer(func.value.id):
            return None
        for stmt in ctx.module.tree.body:
            if (isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.Call)
                    and any(isinstance(t, ast.Name) and t.id == func.value.id for t in stmt.targets)
                    and ctx.qualname(stmt.value.func) in NOT_DRAWS - {"numpy.random.seed", "random.seed"}):
                return f"{func.value.id}.{func.attr}"
        return None
