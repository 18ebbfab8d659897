"""``hk.max_pool``/``hk.avg_pool`` (and the modules) -> ``nn.max_pool``/``nn.avg_pool``."""

from __future__ import annotations

import haiku as hk
import jax
import jax.numpy as jnp
import libcst as cst
import numpy as np
import pytest
from flax import linen as nn

from flaxify.migrate.layers_common import code, spelled_qualname
from flaxify.migrate.pooling import rewrite_pool
from flaxify.migrate.rewrite import Rewrite, Unsupported

SOURCE = [
    ("hk.max_pool(x, (1, 3, 3, 1), (1, 2, 2, 1), 'SAME')", 'nn.max_pool(x, (3, 3), strides=(2, 2), padding="SAME")'),
    (
        "hk.max_pool(x, window_shape=(1, 2, 2, 1), strides=1, padding='VALID')",
        'nn.max_pool(x, (2, 2), padding="VALID")',
    ),
    (
        "hk.avg_pool(x, (1, 3, 3, 1), (1, 2, 2, 1), 'SAME')",
        'nn.avg_pool(x, (3, 3), strides=(2, 2), padding="SAME", count_include_pad=False)',
    ),
    ("hk.avg_pool(x, (1, 3, 3, 1), (1, 2, 2, 1), 'VALID')", 'nn.avg_pool(x, (3, 3), strides=(2, 2), padding="VALID")'),
    (
        "hk.avg_pool(self.h, 2, 2, 'SAME')",
        'nn.avg_pool(self.h, (2,) * (self.h.ndim - 2), strides=(2,) * (self.h.ndim - 2), padding="SAME", '
        "count_include_pad=False)",
    ),
    ("hk.max_pool(x, (2, 1), (2, 1), 'VALID')", 'nn.max_pool(x, (2,), strides=(2,), padding="VALID")'),
    ("hk.max_pool(x, (1, 1, 2, 1), (1, 1, 2, 1), pad)", "nn.max_pool(x, (2,), strides=(2,), padding=pad)"),
    ("hk.MaxPool(3, 1, 'SAME')", 'lambda x: nn.max_pool(x, (3,) * (x.ndim - 2), padding="SAME")'),
    (
        "hk.AvgPool((3, 3, 1), (2, 2, 1), 'SAME', name='pool')",
        'lambda x: nn.avg_pool(x, (3, 3), strides=(2, 2), padding="SAME", count_include_pad=False)',
    ),
]

UNSUPPORTED = [
    ("hk.max_pool(x, (3, 3), (1, 1), 'SAME')", "last (channel) axis"),
    ("hk.max_pool(x, 3, 1, 'SAME', channel_axis=1)", "channels-first"),
    ("hk.max_pool(f(x), 3, 2, 'SAME')", "input's rank"),
    ("hk.max_pool(x, 3, (1, 2, 2, 1), 'SAME')", "depends on the input rank"),
    ("hk.max_pool(x, w, s, 'SAME')", "literal ints or tuples"),
    ("hk.avg_pool(x, (1, 2, 2, 1), (1, 2, 2, 1), 'same')", "'SAME' or 'VALID'"),
    ("hk.avg_pool(x, (1, 2, 2, 1))", "needs window_shape, strides and padding"),
]


def _rewrite(src: str) -> Rewrite | Unsupported:
    call = cst.parse_expression(src)
    assert isinstance(call, cst.Call)
    return rewrite_pool(call, spelled_qualname(call.func) or "")


@pytest.mark.parametrize(("haiku_src", "flax_src"), SOURCE)
def test_source(haiku_src: str, flax_src: str) -> None:
    result = _rewrite(haiku_src)
    assert isinstance(result, Rewrite), result
    assert code(result.expr) == flax_src


@pytest.mark.parametrize(("haiku_src", "reason"), UNSUPPORTED)
def test_unsupported(haiku_src: str, reason: str) -> None:
    result = _rewrite(haiku_src)
    assert isinstance(result, Unsupported), result
    assert reason in result.reason


NUMERIC = [
    ("hk.max_pool(x, (1, 3, 3, 1), (1, 2, 2, 1), 'SAME')", (2, 5, 5, 3)),
    ("hk.max_pool(x, (1, 3, 3, 1), (1, 2, 2, 1), 'SAME')", (2, 2, 5, 5, 3)),  # extra batch axis
    ("hk.avg_pool(x, (1, 3, 3, 1), (1, 2, 2, 1), 'SAME')", (2, 5, 5, 3)),
    ("hk.avg_pool(x, (1, 2, 3, 1), (1, 1, 2, 1), 'VALID')", (2, 5, 7, 3)),
    ("hk.avg_pool(x, 3, 2, 'SAME')", (2, 5, 7, 3)),
    ("hk.avg_pool(x, 3, 2, 'SAME')", (2, 7, 3)),
    ("hk.max_pool(x, (1, 2, 1), 1, 'VALID')", (2, 5, 3)),
    ("hk.avg_pool(x, (1, 1, 2, 1), (1, 1, 2, 1), 'SAME')", (2, 3, 5, 2)),
]


@pytest.mark.parametrize(("haiku_src", "shape"), NUMERIC)
def test_same_output_as_haiku(haiku_src: str, shape: tuple[int, ...]) -> None:
    x = jax.random.normal(jax.random.PRNGKey(0), shape)
    expected = eval(haiku_src, {"hk": hk, "x": x})
    result = _rewrite(haiku_src)
    assert isinstance(result, Rewrite), result
    actual = eval(code(result.expr), {"nn": nn, "jnp": jnp, "x": x})
    np.testing.assert_array_equal(actual, expected)


def test_module_form_is_a_callable_with_the_same_output() -> None:
    x = jax.random.normal(jax.random.PRNGKey(1), (2, 5, 5, 2))
    haiku_src = "hk.AvgPool((3, 3, 1), (2, 2, 1), 'SAME')"
    expected = hk.transform(lambda x: eval(haiku_src, {"hk": hk})(x)).apply({}, None, x)
    result = _rewrite(haiku_src)
    assert isinstance(result, Rewrite)
    np.testing.assert_array_equal(eval(code(result.expr), {"nn": nn})(x), expected)
