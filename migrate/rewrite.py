"""The result types shared by the table-driven expression rewrites.

``rewrite_layer`` / ``rewrite_layer_call`` (``layers.py``), ``rewrite_initializer``
(``initializers.py``) and ``rewrite_pool`` (``pooling.py``) each turn one Haiku
expression into either a :class:`Rewrite` (the exact Flax replacement plus the
imports it needs) or an :class:`Unsupported` (why it cannot be done exactly; the
engine leaves the code as it was under ``# TODO(flaxify): <reason>``).

The local names for ``flax.linen`` and ``jax.numpy`` are chosen by the engine and
passed in (``nn=``, ``jnp=``); the engine adds those two imports itself. Any other
module an emitted expression needs (e.g. ``jax`` for ``jax.random``) is listed in
:attr:`Rewrite.imports`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import libcst as cst


class ImportSpec(NamedTuple):
    """Arguments for ``AddImportsVisitor.add_needed_import(ctx, module, obj, asname)``.

    ``ImportSpec("jax", None, None)`` means ``import jax``;
    ``ImportSpec("flax.linen", "Dense", None)`` means ``from flax.linen import Dense``.
    """

    module: str
    obj: str | None = None
    asname: str | None = None


JAX_IMPORT = ImportSpec("jax", None, None)


@dataclass(frozen=True)
class Rewrite:
    """An exact replacement for one Haiku expression."""

    expr: cst.BaseExpression
    imports: tuple[ImportSpec, ...] = ()
    # A behaviour the rewrite cannot keep although it runs (BatchNorm's debiased
    # EMA): the engine rewrites *and* marks the statement ``# TODO(flaxify): <note>``.
    note: str | None = None


@dataclass(frozen=True)
class Unsupported:
    """No exact rewrite exists; ``reason`` goes into ``# TODO(flaxify): <reason>``."""

    reason: str


Result = Rewrite | Unsupported


def merge_imports(*groups: tuple[ImportSpec, ...]) -> tuple[ImportSpec, ...]:
    """Concatenates import tuples, dropping duplicates but keeping first-seen order."""
    return tuple(dict.fromkeys(spec for group in groups for spec in group))
