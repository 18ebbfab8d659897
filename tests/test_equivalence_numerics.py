"""Leaf comparison: tolerances by dtype, bit-exactness, NaNs, shape and dtype differences."""

from __future__ import annotations

import ml_dtypes
import numpy as np

from flaxify.equivalence.numerics import compare_leaf, compare_trees, tolerance


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
