"""Probe cases that expose what typical inputs hide.

On random inputs a wrong LayerNorm epsilon changes outputs by ~1e-5 and a
dropped bias can be lost among large activations. Probes remove the cover:

* ``tiny-input``: inputs scaled by 1e-3, so variances approach the epsilons;
* ``offset-input``: inputs near a constant, so normalised activations are
  nearly constant too;
* ``perturbed-params``: every parameter moved off its initial value. Biases
  start at zero and scales at one, so a dropped bias or a swapped scale/offset
  computes the same thing at init; after the perturbation it cannot;
* ``scaled:<leaf>``: on the perturbed parameters, one weight matrix scaled by
  1e-3 at a time, so the layer's output is dominated by its bias and the next
  norm layer sees a tiny variance.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

MAX_WEIGHT_PROBES = 12


def input_probes(inputs: list[Any]) -> Iterator[tuple[str, list[Any]]]:
    if not any(np.asarray(x).dtype.kind == "f" for x in inputs):
        return
    yield "tiny-input", [_scale(x, 1e-3, 0.0) for x in inputs]
    yield "offset-input", [_scale(x, 1e-3, 1.0) for x in inputs]


def perturbed(params: Mapping[str, Mapping[str, Any]], seed: int = 77) -> dict[str, dict[str, Any]]:
    """Every float leaf plus noise of half its own spread (or 0.5 for constant leaves)."""
    rng = np.random.default_rng(seed)
    out: dict[str, dict[str, Any]] = {}
    for module, leaves in params.items():
        out[module] = {}
        for name, value in leaves.items():
            a = np.asarray(value)
            if a.dtype.kind == "f":
                spread = float(a.std()) if a.size > 1 and a.std() > 0 else 1.0
                a = (a + 0.5 * spread * rng.standard_normal(a.shape)).astype(a.dtype)
            out[module][name] = a
    return out


def weight_probes(params: Mapping[str, Mapping[str, Any]]) -> Iterator[tuple[str, dict[str, dict[str, Any]]]]:
    """``params`` is already perturbed: scaling a weight down must leave a nonzero bias visible."""
    count = 0
    for module, leaves in params.items():
        for name, value in leaves.items():
            if np.ndim(value) >= 2 and np.asarray(value).dtype.kind == "f" and count < MAX_WEIGHT_PROBES:
                count += 1
                scaled = {m: dict(ls) for m, ls in params.items()}
                scaled[module][name] = np.asarray(value) * np.asarray(1e-3, np.asarray(value).dtype)
                yield f"scaled:{module}/{name}", scaled


def _scale(x: Any, factor: float, shift: float) -> Any:
    a = np.asarray(x)
    if a.dtype.kind != "f":
        return a
    return (a * factor + shift).astype(a.dtype)
