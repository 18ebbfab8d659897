"""Probes catch what the initial parameters and typical inputs hide."""

from __future__ import annotations

import flax.linen as nn
import haiku as hk
import numpy as np

from flaxify.equivalence import compare, parse_spec
from flaxify.equivalence.probes import perturbed

HAIKU_INIT = nn.initializers.variance_scaling(0.87962566103423978**2, "fan_in", "truncated_normal")


def _haiku(x):
    x = hk.Linear(8)(x)
    x = hk.LayerNorm(-1, True, True)(x)
    return hk.Linear(3)(x)


class DroppedBias(nn.Module):
    """Creates the first layer's bias but never adds it: invisible while biases are zero."""

    @nn.compact
    def __call__(self, x):
        dense = nn.Dense(8, kernel_init=HAIKU_INIT, name="linear")
        dense(x)
        x = x @ dense.variables["params"]["kernel"]
        x = nn.LayerNorm(epsilon=1e-5, use_fast_variance=False, name="layer_norm")(x)
        return nn.Dense(3, kernel_init=HAIKU_INIT, name="linear_1")(x)


def test_dropped_bias_passes_at_init_but_fails_the_perturbed_probe():
    net = hk.without_apply_rng(hk.transform(_haiku))
    report = compare(net, DroppedBias(), [parse_spec("f32[4,5]")], devices="cpu", init_seeds=0)
    by_label = {c.label or c.phase: c.ok for c in report.checks if c.phase in {"eval", "probe"}}
    assert by_label["eval"] is True  # zero-initialised biases hide the defect
    assert by_label["perturbed-params"] is False
    assert not report.equivalent
    assert any("perturbed-params" in c for c in report.culprits)


def test_perturbation_moves_constant_leaves_and_is_deterministic():
    params = {"ln": {"scale": np.ones(4, np.float32), "offset": np.zeros(4, np.float32)}, "step": {"n": np.int32(3)}}
    a, b = perturbed(params), perturbed(params)
    assert not np.allclose(a["ln"]["scale"], 1.0) and not np.allclose(a["ln"]["offset"], 0.0)
    assert np.array_equal(a["ln"]["scale"], b["ln"]["scale"])
    assert a["step"]["n"] == 3 and a["ln"]["scale"].dtype == np.float32
