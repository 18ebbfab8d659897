"""flaxify.migrate.imports edits imports exactly as LibCST's Add/RemoveImportsVisitor codemods do.

Each case schedules the same additions and removals twice; one copy runs through
LibCST's own codemods (the reference the engine used before), the other through
``add_imports`` then ``remove_unused_imports``; the resulting sources must be
identical. ``tidy_imports`` is those two and then ``place_added_imports``
(tested on its own in test_migrate_import_order.py). The cases cover each
path of ``remove_unused_imports``: nothing scheduled is imported, the name is
spelled nowhere (no analysis), the name is spelled (scope analysis), and the name
sits in a string that LibCST may read (its own visitor runs).
"""

from __future__ import annotations

import textwrap

import libcst as cst
import pytest
from libcst.codemod import CodemodContext
from libcst.codemod.visitors import AddImportsVisitor, RemoveImportsVisitor

from flaxify.migrate.import_order import leading_imports, place_added_imports
from flaxify.migrate.imports import add_imports, remove_unused_imports, tidy_imports

HK = [("haiku", None, "hk")]

CASES: dict[str, tuple[str, list[tuple[str, str | None, str | None]], list[tuple[str, str | None, str | None]]]] = {
    "unused alias, named only in a comment and a docstring": (
        '''
        """Uses hk.Linear."""
        import haiku as hk
        import numpy as np

        # hk.Linear became nn.Dense
        def f(x):
            """hk is gone."""
            return np.sum(x)
        ''',
        HK,
        [("flax.linen", None, "nn")],
    ),
    "alias still read": (
        """
        import haiku as hk

        def f(x):
            return hk.Linear(2)(x)
        """,
        HK,
        [("flax.linen", None, "nn"), ("jax", None, None)],
    ),
    "alias only shadowed by a parameter": (
        """
        import haiku as hk

        def f(hk):
            return hk + 1
        """,
        HK,
        [],
    ),
    "alias in __all__": (
        """
        import haiku as hk

        __all__ = ["hk"]
        """,
        HK,
        [],
    ),
    "alias in a string annotation": (
        """
        import haiku as hk

        def f(m: "hk.Module") -> None:
            pass
        """,
        HK,
        [],
    ),
    "alias in a plain string": (
        """
        import haiku as hk

        def f():
            raise ValueError("hk.transform is gone")
        """,
        HK,
        [],
    ),
    "from-import, one name still used": (
        """
        from haiku import Linear, Conv2D  # layers
        from typing import Optional

        def f(x: Optional[int]):
            return Linear(2)(x)
        """,
        [("haiku", "Linear", None), ("haiku", "Conv2D", None)],
        [("typing", "Any", None), ("flax.linen", None, "nn")],
    ),
    "parenthesised from-import with comments": (
        """
        from haiku import (
            Linear,  # dense
            Conv2D,  # conv
        )

        def f(x):
            return Conv2D(2, 3)(x)
        """,
        [("haiku", "Linear", None), ("haiku", "Conv2D", None)],
        [],
    ),
    "import inside a function and a dotted import": (
        """
        import haiku.experimental
        import os

        def f():
            import haiku as hk
            return os.sep
        """,
        [("haiku", None, "hk"), ("haiku.experimental", None, None)],
        [("jax.numpy", None, "jnp")],
    ),
    "nothing scheduled is imported": (
        """
        import numpy as np
        from . import sibling
        from os.path import *
        """,
        HK + [("dataclasses", "dataclass", None)],
        [("flax.linen", None, "nn")],
    ),
    "module starting with a class, imports after it": (
        """
        class Config:
            size = 2
        import haiku as hk
        from typing import Optional
        """,
        HK,
        [("typing", "Any", None), ("flax.linen", None, "nn")],
    ),
    "__strict__ flag, two imports on one line, then code": (
        """
        __strict__ = True
        import os; import haiku as hk
        from typing import Optional
        x = os.sep
        from typing import List
        """,
        HK,
        [("typing", "Any", None), ("typing", "List", None)],
    ),
    "if-guarded import on one line": (
        """
        import sys
        if sys.version_info > (3,): import haiku as hk
        x = 1; import haiku as hk
        """,
        HK,
        [],
    ),
}


def _context(removals: list, additions: list) -> CodemodContext:
    context = CodemodContext(filename="case.py")
    for module, obj, asname in additions:
        AddImportsVisitor.add_needed_import(context, module, obj, asname)
    for module, obj, asname in removals:
        RemoveImportsVisitor.remove_unused_import(context, module, obj, asname)
    return context


def _libcst_reference(source: str, removals: list, additions: list) -> str:
    context = _context(removals, additions)
    tree = cst.parse_module(source)
    for tidy in (AddImportsVisitor, RemoveImportsVisitor):
        if context.scratch.get(tidy.CONTEXT_KEY):
            tree = tidy(context).transform_module(tree)
    return tree.code


@pytest.mark.parametrize("name", sorted(CASES))
def test_add_and_remove_match_libcst_codemods(name: str) -> None:
    source, removals, additions = CASES[name]
    source = textwrap.dedent(source).lstrip("\n")
    expected = _libcst_reference(source, removals, additions)
    context = _context(removals, additions)
    got = remove_unused_imports(add_imports(cst.parse_module(source), context), context).code
    assert got == expected


@pytest.mark.parametrize("name", sorted(CASES))
def test_tidy_imports_is_libcst_then_placement(name: str) -> None:
    source, removals, additions = CASES[name]
    tree = cst.parse_module(textwrap.dedent(source).lstrip("\n"))
    reference = cst.parse_module(_libcst_reference(tree.code, removals, additions))
    expected = place_added_imports(reference, leading_imports(tree)).code
    assert tidy_imports(tree, _context(removals, additions)).code == expected


def test_unused_haiku_import_is_dropped_and_flax_added() -> None:
    """The common case, spelled out: the result is not just equal to LibCST's, it is right."""
    source, removals, additions = CASES["unused alias, named only in a comment and a docstring"]
    got = tidy_imports(cst.parse_module(textwrap.dedent(source).lstrip("\n")), _context(removals, additions)).code
    assert "import haiku" not in got
    assert "import flax.linen as nn\n" in got
    assert "# hk.Linear became nn.Dense" in got


def test_used_haiku_import_is_kept() -> None:
    source, removals, additions = CASES["alias still read"]
    got = tidy_imports(cst.parse_module(textwrap.dedent(source).lstrip("\n")), _context(removals, additions)).code
    assert got.count("import haiku as hk\n") == 1
