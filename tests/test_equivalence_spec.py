"""parse_spec: the --input SPEC language."""

from __future__ import annotations

import numpy as np
import pytest

from flaxify.equivalence import parse_spec
from flaxify.equivalence.errors import InvalidInputSpecError


@pytest.mark.parametrize(
    ("text", "shape", "dtype"),
    [
        ("f32[8,28,28,1]", (8, 28, 28, 1), "float32"),
        ("bf16[4,16]", (4, 16), "bfloat16"),
        ("f16[3]", (3,), "float16"),
        ("i32[2,16]:0..50", (2, 16), "int32"),
        ("f32[]", (), "float32"),
    ],
)
def test_shapes_and_dtypes(text, shape, dtype):
    value = parse_spec(text)
    assert value.shape == shape and str(value.dtype) == dtype


def test_integer_range_is_half_open():
    ids = parse_spec("i32[64,64]:3..7")
    assert ids.min() == 3 and ids.max() == 6


def test_same_spec_same_array_and_salt_changes_it():
    assert np.array_equal(parse_spec("f32[4,4]"), parse_spec("f32[4,4]"))
    assert not np.array_equal(parse_spec("f32[4,4]"), parse_spec("f32[4,4]", salt=1))


def test_npy_file(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, np.arange(6, dtype=np.float32).reshape(2, 3))
    assert np.array_equal(parse_spec(str(path)), np.arange(6, dtype=np.float32).reshape(2, 3))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("f32(8,2)", "expected DTYPE[d0,d1,...]"),
        ("q7[2]", "unknown dtype 'q7'"),
        ("i32[2]:5..5", "empty range"),
        ("f32[2,x]", "expected DTYPE"),
        ("missing.npy", "does not exist"),
    ],
)
def test_bad_specs_say_what_is_wrong(text, message):
    with pytest.raises(
        InvalidInputSpecError, match=message.replace("(", r"\(").replace("[", r"\[").replace(".", r"\.")
    ):
        parse_spec(text)
