"""The gradient check: correct attention/LayerNorm ports pass, gradient-only defects fail."""

from __future__ import annotations

import flax.linen as nn
import haiku as hk
import jax
import pytest

from flaxify.equivalence import compare, parse_spec

INPUTS = [parse_spec("f32[4,16,24]")]


def haiku_block(x):
    x = hk.Linear(32, name="proj")(x)
    x = hk.LayerNorm(-1, True, True, name="ln")(x)
    return hk.MultiHeadAttention(4, 8, w_init=hk.initializers.VarianceScaling(1.0), name="mha")(x, x, x)


class Block(nn.Module):
    """The Flax port; ``detach`` stops the gradient into the attention (outputs unchanged)."""

    detach: bool = False

    @nn.compact
    def __call__(self, x):
        x = nn.Dense(32, name="proj")(x)
        x = nn.LayerNorm(epsilon=1e-5, use_fast_variance=False, name="ln")(x)
        if self.detach:
            x = jax.lax.stop_gradient(x)
        return nn.MultiHeadDotProductAttention(4, qkv_features=32, out_features=32, name="mha")(x, x)


def _grad_checks(flax_module: nn.Module):
    net = hk.without_apply_rng(hk.transform(haiku_block))
    report = compare(net, flax_module, INPUTS, devices="cpu", init_seeds=0, run_probes=False)
    return report, [c for c in report.checks if c.phase == "grad"]


def test_correct_attention_port_passes_with_zero_key_bias_gradient():
    # d/key/bias is mathematically zero (softmax ignores a per-query constant)
    # and LayerNorm's backward pass rounds differently: not bit-exact, still equivalent.
    report, grads = _grad_checks(Block())
    assert report.equivalent, report.format_table()
    leaves = {d.name: d for c in grads for d in c.leaves}
    assert leaves["d/params/mha/key/bias"].within
    assert all(d.within for d in leaves.values())


@pytest.mark.parametrize("module", [Block(detach=True)], ids=["stop_gradient"])
def test_gradient_only_defect_still_fails(module):
    report, grads = _grad_checks(module)
    assert all(c.ok for c in report.checks if c.phase == "eval"), report.format_table()
    assert not report.equivalent
    failing = {d.name for c in grads for d in c.leaves if not d.within}
    assert {"d/params/proj/kernel", "d/params/ln/scale"} <= failing
