"""Leaf-by-leaf numerical comparison: max abs error, max relative error, bit-exactness.

``within`` follows ``numpy.allclose``: ``|flax - haiku| <= atol + rtol * |haiku|``
elementwise, NaNs equal only to NaNs. Default tolerances depend on the lowest
floating precision involved (the issue's defaults for float32).

Gradients use the same rule with ``atol`` widened by ``rtol`` times the
gradient's *scale* (the largest Haiku gradient entry of the check, see
:func:`gradient_scale`): a backward pass sums many terms, so an entry that is
mathematically zero (an attention key bias) or tiny comes out as rounding noise
of the size of those terms, and its relative error means nothing. ``max_rel``
is still reported, as information only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

TOLERANCES: dict[str, tuple[float, float]] = {  # dtype -> (rtol, atol)
    "float64": (1e-7, 1e-9),
    "float32": (1e-5, 1e-6),
    "float16": (1e-3, 1e-3),
    "bfloat16": (1e-2, 1e-2),
}


@dataclass(frozen=True)
class LeafDiff:
    """One compared array."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    max_abs: float
    max_rel: float
    bitexact: bool | None  # None: exactness not expected (a by-design translation)
    within: bool
    note: str = ""


def tolerance(dtypes: Sequence[str], rtol: float | None, atol: float | None) -> tuple[float, float]:
    """The (rtol, atol) to use: explicit values win, else the loosest default among ``dtypes``."""
    defaults = [TOLERANCES[d] for d in dtypes if d in TOLERANCES] or [TOLERANCES["float32"]]
    loose = max(defaults)
    return (loose[0] if rtol is None else rtol, loose[1] if atol is None else atol)


def compare_leaf(
    name: str,
    ref: Any,
    got: Any,
    *,
    rtol: float | None,
    atol: float | None,
    exact_expected: bool = True,
    note: str = "",
    scale: float = 0.0,
) -> LeafDiff:
    """Compares Haiku's ``ref`` with Flax's ``got``.

    ``scale`` (gradients) widens the absolute tolerance to ``atol + rtol * scale``.
    """
    a, b = np.asarray(ref), np.asarray(got)
    dtype = str(a.dtype) if a.dtype == b.dtype else f"{a.dtype}/{b.dtype}"
    if a.shape != b.shape:
        return LeafDiff(name, a.shape, dtype, float("inf"), float("inf"), False, False, f"shape {a.shape} vs {b.shape}")
    r, t = tolerance([str(a.dtype), str(b.dtype)], rtol, atol)
    t += r * scale
    exact = bool(np.array_equal(a, b, equal_nan=a.dtype.kind == "f" and b.dtype.kind == "f"))
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    diff = np.abs(a64 - b64)
    both_nan = np.isnan(a64) & np.isnan(b64)
    diff = np.where(both_nan, 0.0, diff)
    max_abs = float(np.max(diff)) if diff.size else 0.0
    nonzero = np.abs(a64) > 0
    max_rel = (
        float(np.max(diff[nonzero] / np.abs(a64[nonzero])))
        if np.any(nonzero)
        else (0.0 if max_abs == 0 else float("inf"))
    )
    within = exact or bool(np.all((diff <= t + r * np.abs(a64)) | both_nan))
    if a.dtype != b.dtype:
        within, note = False, (note + "; " if note else "") + f"dtype differs: Haiku {a.dtype}, Flax {b.dtype}"
    return LeafDiff(name, a.shape, dtype, max_abs, max_rel, exact if exact_expected else None, within, note)


def gradient_scale(refs: Sequence[Any]) -> float:
    """The largest finite magnitude among Haiku's gradient leaves (0 when there is none)."""
    peaks = [np.max(np.abs(x), initial=0.0, where=np.isfinite(x)) for x in map(np.asarray, refs) if x.dtype.kind == "f"]
    return float(max(peaks, default=0.0))


def compare_trees(
    names: Sequence[str], refs: Sequence[Any], gots: Sequence[Any], *, rtol: float | None, atol: float | None
) -> list[LeafDiff]:
    """Compares two flat leaf lists pairwise; a length difference is itself a failing entry."""
    diffs = [compare_leaf(n, r, g, rtol=rtol, atol=atol) for n, r, g in zip(names, refs, gots, strict=False)]
    if len(refs) != len(gots):
        diffs.append(
            LeafDiff(
                "<structure>",
                (),
                "",
                float("inf"),
                float("inf"),
                False,
                False,
                f"Haiku returns {len(refs)} arrays, Flax {len(gots)}",
            )
        )
    return diffs


def close(a: Any, b: Any, rtol: float, atol: float) -> bool:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=rtol, atol=atol, equal_nan=True))
