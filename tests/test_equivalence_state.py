"""Top-level Haiku state and parameters (the '~' bucket) against a Flax module's own variables."""

from __future__ import annotations

import flax.linen as nn
import haiku as hk
import jax.numpy as jnp
import pytest

from flaxify.equivalence import compare, parse_spec


def counter_model(x):
    counter = hk.get_state("counter", shape=[], dtype=jnp.int32, init=jnp.ones)
    multiplier = hk.get_parameter("multiplier", shape=[1], dtype=x.dtype, init=jnp.ones)
    hk.set_state("counter", counter + 1)
    return x * multiplier * counter


class Counter(nn.Module):
    step: int = 1

    @nn.compact
    def __call__(self, x):
        counter = self.variable("counter", "counter", lambda: jnp.ones((), jnp.int32))
        multiplier = self.param("multiplier", nn.initializers.ones_init(), [1], x.dtype)
        out = x * multiplier * counter.value
        if not self.is_initializing():
            counter.value += self.step
        return out


@pytest.mark.parametrize(("step", "equivalent"), [(1, True), (2, False)])
def test_state_update_is_compared(step, equivalent):
    report = compare(hk.transform_with_state(counter_model), Counter(step), [parse_spec("f32[2,3]")], devices="cpu")
    assert report.equivalent is equivalent, report.format_table()
    rows = {p.haiku: p.flax for p in report.params}
    assert rows == {"~/multiplier": "params/multiplier", "state:~/counter": "counter/counter"}
    if not equivalent:
        assert any("counter/counter" in c for c in report.culprits)


def _multi_counter():
    return counter_model, {"__call__": counter_model}


@pytest.mark.parametrize(
    "haiku_net",
    [
        hk.without_apply_rng(hk.transform_with_state(counter_model)),
        hk.without_apply_rng(hk.multi_transform_with_state(_multi_counter)),
        hk.multi_transform_with_state(_multi_counter),
    ],
    ids=["without_apply_rng(transform_with_state)", "without_apply_rng(multi_transform_with_state)", "multi_with_rng"],
)
def test_stateful_apply_with_and_without_rng(haiku_net):
    """``hk.without_apply_rng`` drops ``rng`` from a stateful ``apply`` too: it must not be passed one."""
    report = compare(haiku_net, Counter(1), [parse_spec("f32[2,3]")], devices="cpu", init_seeds=0, run_probes=False)
    assert report.equivalent and report.bitexact, report.format_table()
