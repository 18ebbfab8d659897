"""JX901: Haiku is still imported (for teams in the middle of a migration)."""

from __future__ import annotations

import ast

from flaxify.lint.rule import ModuleContext, Rule


class HaikuImport(Rule):
    """
    ## What it does
    Flags every ``import haiku`` / ``from haiku import ...``. Off by default: select it
    (``--select JX901``, or the ``flaxify-no-haiku`` pre-commit hook) to stop Haiku code from
    coming back once a project has moved to Flax.

    ## Why is this bad?
    Haiku is in maintenance mode; a half-migrated project has two module systems, two
    parameter layouts and two RNG conventions.

    ## Example
    ```python
    import haiku as hk
    ```

    ## Use instead
    ```python
    import flax.linen as nn  # flaxify migrate rewrites the Haiku code
    ```

    ## Fix safety
    No fix here; ``flaxify migrate`` is the fix.
    """

    CODE = "JX901"
    NAME = "haiku-import"
    SCOPE = "module"
    DEFAULT = False
    MESSAGE = "Haiku is still imported; migrate this module to Flax (`flaxify migrate {path}`)"
    VALID = ["import flax.linen as nn", "import jax\nhaiku = 'not the library'"]
    INVALID = ["import haiku as hk", "from haiku import nets"]

    def check_module(self, ctx: ModuleContext) -> None:
        if "haiku" not in ctx.module.source:
            return
        for node in ctx.module.import_nodes:
            if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "haiku" for a in node.names) or isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "haiku":
                ctx.report(node, self.MESSAGE.format(path=ctx.module.display))
