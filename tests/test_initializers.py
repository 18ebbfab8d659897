"""Haiku initializers -> Flax initializers: the emitted source, and the same distribution.

Haiku draws its key with ``hk.next_rng_key()``; inside ``transform(...).apply(params,
rng)`` the first such key is ``next(hk.PRNGSequence(rng))``, so the emitted Flax
initializer called with that key must give the same numbers where it calls the
same ``jax.random`` function, and the same mean/std everywhere.
"""

from __future__ import annotations

import haiku as hk
import jax
import jax.numpy as jnp
import libcst as cst
import numpy as np
import pytest
from flax import linen as nn

from flaxify.migrate.initializers import default_kernel_init, rewrite_initializer
from flaxify.migrate.layers_common import code
from flaxify.migrate.rewrite import JAX_IMPORT, Rewrite, Unsupported

SOURCE = [
    ("hk.initializers.Constant(0.5)", "nn.initializers.constant(0.5)"),
    ("hk.initializers.RandomNormal()", "nn.initializers.normal(1.0)"),
    ("hk.initializers.RandomNormal(0.1)", "nn.initializers.normal(0.1)"),
    (
        "hk.initializers.RandomNormal(0.1, 1.0)",
        "lambda key, shape, dtype=jnp.float32: 1.0 + 0.1 * jax.random.normal(key, shape, dtype)",
    ),
    ("hk.initializers.TruncatedNormal()", "nn.initializers.truncated_normal(1.0)"),
    ("hk.initializers.TruncatedNormal(0.02, lower=-3.0)", "nn.initializers.truncated_normal(0.02, lower=-3.0)"),
    (
        "hk.initializers.TruncatedNormal(stddev=0.5, mean=2.0)",
        "lambda key, shape, dtype=jnp.float32: 0.5 * jax.random.truncated_normal(key, -2.0, 2.0, shape, dtype) + 2.0",
    ),
    ("hk.initializers.RandomUniform()", "nn.initializers.uniform(1.0)"),
    ("hk.initializers.RandomUniform(maxval=3.0)", "nn.initializers.uniform(3.0)"),
    (
        "hk.initializers.RandomUniform(-1.0, 2.0)",
        "lambda key, shape, dtype=jnp.float32: jax.random.uniform(key, shape, dtype, -1.0, 2.0)",
    ),
    ("hk.initializers.VarianceScaling()", 'nn.initializers.variance_scaling(1.0, "fan_in", "truncated_normal")'),
    (
        "hk.initializers.VarianceScaling(2.0, 'fan_avg', 'Uniform')",
        "nn.initializers.variance_scaling(2.0, 'fan_avg', \"uniform\")",
    ),
    ("hk.initializers.UniformScaling(2.0)", 'nn.initializers.variance_scaling(2.0 ** 2, "fan_in", "uniform")'),
    ("hk.initializers.UniformScaling(s)", 'nn.initializers.variance_scaling((s) ** 2, "fan_in", "uniform")'),
    ("hk.initializers.Orthogonal()", "nn.initializers.orthogonal()"),
    ("hk.initializers.Orthogonal(2.0, axis=0)", "nn.initializers.orthogonal(2.0, column_axis=0)"),
    (
        "hk.initializers.Identity(3.0)",
        "lambda key, shape, dtype=jnp.float32: "
        "3.0 * jnp.broadcast_to(jnp.eye(shape[-2], shape[-1], dtype=dtype), shape)",
    ),
    ("jnp.zeros", "nn.initializers.zeros"),
    ("jnp.ones", "nn.initializers.ones"),
    ("lambda s, d: jnp.full(s, 2.0, d)", "lambda key, s, d: jnp.full(s, 2.0, d)"),
    ("lambda s, d: jax.random.normal(hk.next_rng_key(), s, d)", "lambda key, s, d: jax.random.normal(key, s, d)"),
    ("lambda key, d: key * jnp.ones(d)", "lambda key_, key, d: key * jnp.ones(d)"),
]

UNSUPPORTED = [
    ("hk.initializers.VarianceScaling(fan_in_axes=(0,))", "fan_in_axes"),
    ("my_init", "not a known Haiku initializer"),
    ("lambda shape: jnp.zeros(shape)", "takes (shape, dtype)"),
    ("lambda s, d: hk.next_rng_key() + hk.next_rng_key()", "more than once"),
    ("hk.initializers.Constant(*args)", "*args"),
]


@pytest.mark.parametrize(("haiku_src", "flax_src"), SOURCE)
def test_source(haiku_src: str, flax_src: str) -> None:
    result = rewrite_initializer(cst.parse_expression(haiku_src), None)
    assert isinstance(result, Rewrite), result
    assert code(result.expr) == flax_src


def test_lambdas_that_call_jax_random_import_jax() -> None:
    result = rewrite_initializer(cst.parse_expression("hk.initializers.RandomNormal(0.1, 1.0)"), None)
    assert isinstance(result, Rewrite) and result.imports == (JAX_IMPORT,)


def test_local_names_are_used() -> None:
    src = "hk.initializers.Identity()"
    result = rewrite_initializer(cst.parse_expression(src), "haiku.initializers.Identity", nn="linen", jnp="np_")
    assert isinstance(result, Rewrite)
    assert code(result.expr) == (
        "lambda key, shape, dtype=np_.float32: np_.broadcast_to(np_.eye(shape[-2], shape[-1], dtype=dtype), shape)"
    )


@pytest.mark.parametrize("haiku_src", [flax_src for _, flax_src in SOURCE if not flax_src.startswith("lambda key, s,")])
def test_already_converted_initializers_are_kept(haiku_src: str) -> None:
    """The engine rewrites a layer's w_init before the layer: a second pass is a no-op."""
    result = rewrite_initializer(cst.parse_expression(haiku_src), None)
    assert isinstance(result, Rewrite) and code(result.expr) == haiku_src


@pytest.mark.parametrize(("haiku_src", "reason"), UNSUPPORTED)
def test_unsupported(haiku_src: str, reason: str) -> None:
    result = rewrite_initializer(cst.parse_expression(haiku_src), None)
    assert isinstance(result, Unsupported)
    assert reason in result.reason


def _flax_init(haiku_src: str):
    result = rewrite_initializer(cst.parse_expression(haiku_src), None)
    assert isinstance(result, Rewrite), result
    return eval(code(result.expr), {"nn": nn, "jnp": jnp, "jax": jax})


def _haiku_draw(init, shape: tuple[int, ...], rng: jax.Array) -> jax.Array:
    return hk.transform(lambda: init(shape, jnp.float32)).apply({}, rng)


RNG = jax.random.PRNGKey(42)
# Initializers whose Flax rewrite calls the very jax.random function Haiku calls.
SAME_BITS = [
    "hk.initializers.Constant(0.5)",
    "hk.initializers.RandomNormal()",
    "hk.initializers.RandomNormal(0.3, -1.0)",
    "hk.initializers.TruncatedNormal()",
    "hk.initializers.TruncatedNormal(0.02, lower=-1.0, upper=3.0)",
    "hk.initializers.TruncatedNormal(stddev=0.5, mean=2.0)",
    "hk.initializers.RandomUniform()",
    "hk.initializers.RandomUniform(maxval=3.0)",
    "hk.initializers.RandomUniform(-1.0, 2.0)",
    "hk.initializers.Identity(3.0)",
    "jnp.zeros",
    "jnp.ones",
    "lambda s, d: 2.0 * jax.random.normal(hk.next_rng_key(), s, d)",
]


@pytest.mark.parametrize("haiku_src", SAME_BITS)
def test_same_values_for_the_same_key(haiku_src: str) -> None:
    shape = (3, 5, 4)
    expected = _haiku_draw(eval(haiku_src, {"hk": hk, "jnp": jnp, "jax": jax}), shape, RNG)
    actual = _flax_init(haiku_src)(next(hk.PRNGSequence(RNG)), shape, jnp.float32)
    np.testing.assert_array_equal(actual, expected)


# JAX computes these scale factors in float32, Haiku in float64: equal up to the last bit.
SAME_UP_TO_ROUNDING = [
    "hk.initializers.VarianceScaling()",
    "hk.initializers.VarianceScaling(2.0, 'fan_out', 'normal')",
    "hk.initializers.VarianceScaling(0.5, 'fan_avg', 'uniform')",
    "hk.initializers.UniformScaling(2.0)",
]


@pytest.mark.parametrize("haiku_src", SAME_UP_TO_ROUNDING)
def test_fan_scaled_values_agree_to_rounding(haiku_src: str) -> None:
    shape = (3, 5, 6)
    expected = _haiku_draw(eval(haiku_src, {"hk": hk}), shape, RNG)
    actual = _flax_init(haiku_src)(next(hk.PRNGSequence(RNG)), shape, jnp.float32)
    np.testing.assert_allclose(actual, expected, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("shape", [(6, 4), (4, 3), (3, 3, 5, 8), (19, 2)])
def test_default_kernel_init_is_haikus_linear_default(shape: tuple[int, ...]) -> None:
    """Haiku's Linear/Conv default, TruncatedNormal(1/sqrt(fan_in)), and the emitted one."""
    fan_in = int(np.prod(shape[:-1]))
    haiku_init = hk.initializers.TruncatedNormal(stddev=1.0 / np.sqrt(fan_in))
    expected = _haiku_draw(haiku_init, shape, RNG)
    flax_init = eval(default_kernel_init("nn"), {"nn": nn})
    actual = flax_init(next(hk.PRNGSequence(RNG)), shape, jnp.float32)
    # Same draw and the same stddev, but JAX derives the factor in float32 (sqrt(var) / 0.8796)
    # where Haiku rounds 1 / sqrt(fan_in) from float64: for about a third of all fan_in values the
    # factor is 1 ulp apart, so values can differ in the last 2 bits (fan_in=6 here).
    np.testing.assert_array_max_ulp(actual, expected, maxulp=2)


STATISTICS = [
    "hk.initializers.VarianceScaling(2.0, 'fan_in', 'truncated_normal')",
    "hk.initializers.UniformScaling(0.5)",
    "hk.initializers.Orthogonal(2.0)",
    "hk.initializers.Orthogonal(axis=0)",
    "hk.initializers.TruncatedNormal(stddev=0.5, mean=2.0)",
]


@pytest.mark.parametrize("haiku_src", STATISTICS)
def test_same_mean_and_std(haiku_src: str) -> None:
    """Many samples, independent keys: mean and std agree within sampling error."""
    shape = (64, 48)
    haiku_init = eval(haiku_src, {"hk": hk})
    flax_init = _flax_init(haiku_src)
    hk_keys = jax.random.split(jax.random.PRNGKey(0), 8)
    fx_keys = jax.random.split(jax.random.PRNGKey(1), 8)
    ours = jnp.stack([flax_init(k, shape, jnp.float32) for k in fx_keys])
    theirs = jnp.stack([_haiku_draw(haiku_init, shape, k) for k in hk_keys])
    std = float(jnp.std(theirs))
    assert abs(float(jnp.mean(ours)) - float(jnp.mean(theirs))) < 0.02 * max(std, 1.0)
    assert abs(float(jnp.std(ours)) / std - 1.0) < 0.02


@pytest.mark.parametrize("haiku_src", ["hk.initializers.Orthogonal(2.0)", "hk.initializers.Orthogonal(axis=0)"])
def test_orthogonal_rows_or_columns_match_haiku(haiku_src: str) -> None:
    """Haiku and Flax orthogonalize along the same axis, with the same scale."""
    shape = (6, 4)
    ours = _flax_init(haiku_src)(RNG, shape, jnp.float32)
    theirs = _haiku_draw(eval(haiku_src, {"hk": hk}), shape, RNG)
    for w in (ours, theirs):
        gram = w.T @ w if w.shape[0] >= w.shape[1] else w @ w.T
        np.testing.assert_allclose(gram, gram[0, 0] * jnp.eye(gram.shape[0]), atol=1e-5)
    np.testing.assert_allclose(jnp.linalg.norm(ours, axis=0), jnp.linalg.norm(theirs, axis=0), rtol=1e-5)
