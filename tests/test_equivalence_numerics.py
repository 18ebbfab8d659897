"""Leaf comparison: tolerances by dtype, bit-exactness, NaNs, shape and dtype differences."""

from __future__ import annotations

import ml_dtypes
import numpy as np

from flaxify.equivalence.numerics import compare_leaf, compare_trees, gradient_scale, tolerance


def test_default_tolerances_follow_the_loosest_dtype():
    assert tolerance(["float32"], None, None) == (1e-5, 1e-6)
    assert tolerance(["float32", "bfloat16"], None, None) == (1e-2, 1e-2)
    assert tolerance(["float16"], None, None) == (1e-3, 1e-3)
    assert tolerance(["bfloat16"], 1e-4, None) == (1e-4, 1e-2)


def test_identical_arrays_are_bitexact():
    a = np.linspace(-1, 1, 7, dtype=np.float32)
    d = compare_leaf("out", a, a.copy(), rtol=None, atol=None)
    assert d.bitexact and d.within and d.max_abs == 0.0 and d.max_rel == 0.0


def test_one_ulp_is_within_tolerance_but_not_bitexact():
    a = np.array([1.0, 2.0], np.float32)
    b = np.nextafter(a, np.float32(3))
    d = compare_leaf("out", a, b, rtol=None, atol=None)
    assert d.within and not d.bitexact and 0 < d.max_rel < 1e-6


def test_wrong_epsilon_sized_difference_fails_float32_tolerance():
    a = np.array([1.0, -0.5], np.float32)
    d = compare_leaf("out", a, a + np.float32(5e-5), rtol=None, atol=None)
    assert not d.within


def test_nans_in_the_same_places_are_equal():
    a = np.array([np.nan, 1.0], np.float32)
    assert compare_leaf("out", a, a.copy(), rtol=None, atol=None).bitexact


def test_bf16_outputs_get_bf16_tolerance():
    a = np.array([1.0, 3.0], ml_dtypes.bfloat16)
    b = np.array([1.0078125, 3.0], ml_dtypes.bfloat16)  # one bf16 ulp at 1.0
    assert compare_leaf("out", a, b, rtol=None, atol=None).within


def test_dtype_and_shape_differences_fail_with_a_note():
    a = np.ones(3, np.float32)
    dtype = compare_leaf("out", a.astype(ml_dtypes.bfloat16), a, rtol=None, atol=None)
    assert not dtype.within and "dtype differs" in dtype.note
    shape = compare_leaf("out", a, np.ones(4, np.float32), rtol=None, atol=None)
    assert not shape.within and "shape" in shape.note


def test_a_missing_output_is_a_failing_entry():
    diffs = compare_trees(["a", "b"], [np.ones(2), np.ones(2)], [np.ones(2)], rtol=None, atol=None)
    assert [d.name for d in diffs] == ["a", "<structure>"] and not diffs[-1].within


def test_gradient_noise_around_zero_passes_at_the_gradients_scale():
    # A mathematically zero gradient (attention key bias) comes out as rounding
    # noise of the size of the summed terms: huge relative error, still correct.
    rng = np.random.default_rng(0)
    big = rng.standard_normal(64).astype(np.float32) * 4
    haiku_zero = (rng.standard_normal(8) * 1e-6).astype(np.float32)
    flax_zero = (rng.standard_normal(8) * 1e-6).astype(np.float32)
    scale = gradient_scale([big, haiku_zero])
    assert scale == float(np.max(np.abs(big)))
    plain = compare_leaf("d/key/bias", haiku_zero, flax_zero, rtol=None, atol=None)
    scaled = compare_leaf("d/key/bias", haiku_zero, flax_zero, rtol=None, atol=None, scale=scale)
    assert not plain.within and scaled.within and scaled.max_rel > 1  # max_rel is information only


def test_gradient_scale_does_not_hide_real_errors():
    g = np.linspace(-2, 2, 16, dtype=np.float32)
    scale = gradient_scale([g])
    assert not compare_leaf("d/w", g, g * np.float32(1.001), rtol=None, atol=None, scale=scale).within
    assert not compare_leaf("d/w", g, g[::-1].copy(), rtol=None, atol=None, scale=scale).within
    assert gradient_scale([np.array([np.inf, 1.0], np.float32), np.arange(3)]) == 1.0
