"""The vocabulary of a parameter mapping: what each rule returns.

A :class:`Transfer` fills one Flax leaf from one or more Haiku leaves through a
*linear* conversion (rename, reshape, transpose, slice) plus an optional
additive ``offset`` (the LSTM forget-gate ``+1`` folded into a bias). Keeping
the constant apart lets the same plan map gradients, which are linear.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from flaxify.equivalence.trees import FlaxPath, HaikuLeaf

Convert = Callable[[Sequence[np.ndarray]], np.ndarray]


def identity(values: Sequence[np.ndarray]) -> np.ndarray:
    """The conversion of a plain rename."""
    return values[0]


def reshape_to(shape: tuple[int, ...]) -> Convert:
    """A row-major reshape (element order kept), e.g. squeezing ``(1,1,1,C)`` to ``(C,)``."""
    return lambda values: np.reshape(values[0], shape)


@dataclass(frozen=True)
class Transfer:
    """Flax leaf ``collection/flax_path`` = ``convert(sources) + offset``."""

    collection: str
    flax_path: FlaxPath
    sources: tuple[HaikuLeaf, ...]
    convert: Convert = identity
    offset: float = 0.0
    rule: str = "rename"
    by: str = "name"
    ema_bucket: str | None = None

    def value(self, leaves: Mapping[HaikuLeaf, Any], *, linear_only: bool = False) -> np.ndarray:
        out = self.convert([np.asarray(leaves[s]) for s in self.sources])
        if self.offset and not linear_only:
            out = out + np.asarray(self.offset, dtype=out.dtype)
        return out


@dataclass(frozen=True)
class Mismatch:
    """A Haiku leaf paired (by name or order) with a Flax leaf of an incompatible shape."""

    source: HaikuLeaf
    haiku_shape: tuple[int, ...]
    collection: str
    flax_path: FlaxPath
    flax_shape: tuple[int, ...]
    reason: str


@dataclass(frozen=True)
class Dropped:
    """A Haiku leaf with no Flax counterpart *by design*; reported, never silent."""

    source: HaikuLeaf
    reason: str


@dataclass
class RuleResult:
    """What one rule made of one Haiku bucket."""

    rule: str
    transfers: list[Transfer] = field(default_factory=list)
    mismatches: list[Mismatch] = field(default_factory=list)
    dropped: list[Dropped] = field(default_factory=list)
    unit: FlaxPath = ()

    @property
    def empty(self) -> bool:
        return not (self.transfers or self.mismatches)


def squeeze_equal(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    """True when ``a`` and ``b`` differ only by size-1 dimensions."""
    return tuple(d for d in a if d != 1) == tuple(d for d in b if d != 1)


def refines(coarse: tuple[int, ...], fine: tuple[int, ...]) -> bool:
    """True when ``fine`` splits dimensions of ``coarse`` in place (``(D, H*K)`` → ``(D, H, K)``)."""
    coarse = tuple(d for d in coarse if d != 1)
    fine = tuple(d for d in fine if d != 1)
    i, acc = 0, 1
    for d in fine:
        acc *= d
        if i >= len(coarse) or acc > coarse[i]:
            return False
        if acc == coarse[i]:
            i, acc = i + 1, 1
    return i == len(coarse) and acc == 1
