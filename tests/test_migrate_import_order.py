"""Where migrate puts the imports it adds (migrate/import_order.py), on real migrations."""

from __future__ import annotations

import textwrap

import pytest

from flaxify.migrate import migrate_source

# A body that makes migrate add `flax.linen` (a layer), and for the emitted BatchNorm
# `typing.Any` (its fields), `re` (its channel-index helper) and `jax.numpy`.
BODY = '''

def forward(x, is_training):
    x = hk.Linear(4)(x)
    return hk.BatchNorm(True, True, 0.9)(x, is_training)
'''

ADDED = {"import re", "from typing import Any", "import flax.linen as nn", "import jax.numpy as jnp"}


def migrated_header(imports: str) -> str:
    """The migrated file up to its first blank-line-separated non-import block."""
    source = textwrap.dedent(imports).lstrip() + BODY
    out = migrate_source(source.encode(), "m.py").source.decode()
    return out.split("\n\n\n", 1)[0]


@pytest.mark.parametrize(
    ("imports", "expected"),
    [
        pytest.param(
            """
            import haiku as hk
            import jax
            import jax.numpy as jnp
            """,
            """
            import re
            from typing import Any

            import flax.linen as nn
            import jax
            import jax.numpy as jnp
            """,
            id="new stdlib section before the third-party one, flax sorted in",
        ),
        pytest.param(
            """
            \"\"\"Doc.\"\"\"

            from __future__ import annotations

            import dataclasses
            import typing

            import haiku as hk
            import jax
            import numpy as np
            """,
            """
            \"\"\"Doc.\"\"\"

            from __future__ import annotations

            import dataclasses
            import re
            import typing
            from typing import Any

            import flax.linen as nn
            import jax
            import jax.numpy as jnp
            import numpy as np
            """,
            id="existing sections: docstring and __future__ stay first",
        ),
        pytest.param(
            """
            import sys
            import os

            import optax
            import haiku as hk
            import jax
            """,
            """
            import sys
            import os
            import re
            from typing import Any

            import optax
            import jax
            import flax.linen as nn
            import jax.numpy as jnp
            """,
            id="an unsorted section gets the new line last",
        ),
    ],
)
def test_added_imports_go_into_their_sections(imports: str, expected: str) -> None:
    assert migrated_header(imports) == textwrap.dedent(expected).strip()


@pytest.mark.parametrize(
    "imports",
    [
        pytest.param("import jax\nimport os\nimport haiku as hk\n", id="sections out of order"),
        pytest.param("import os\nimport haiku as hk\n# the accelerator stack\nimport jax\n", id="a comment among them"),
        pytest.param("import jax\n\nimport numpy as np\nimport haiku as hk\n", id="a blank line inside a section"),
    ],
)
def test_layouts_it_cannot_read_are_left_as_libcst_writes_them(imports: str) -> None:
    """The user's lines come first, untouched and in order; the added ones follow them."""
    user = [line for line in imports.splitlines() if "haiku" not in line]
    header = migrated_header(imports).splitlines()
    assert header[: len(user)] == user
    assert set(header[len(user) :]) == ADDED


def test_user_lines_keep_their_text_and_order() -> None:
    header = migrated_header(
        """
        import functools
        import haiku as hk
        import jax
        from jax import numpy as jnp
        """
    )
    lines = header.splitlines()
    user = [line for line in lines if line in ("import functools", "import jax", "from jax import numpy as jnp")]
    assert user == ["import functools", "import jax", "from jax import numpy as jnp"]


def test_second_run_is_a_no_op() -> None:
    source = "import haiku as hk\nimport jax\n" + BODY
    once = migrate_source(source.encode(), "m.py").source
    assert migrate_source(once, "m.py").source == once
