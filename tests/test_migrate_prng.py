"""``hk.PRNGSequence`` -> the emitted ``PRNGSequence`` helper, and ``hk.dropout`` with an explicit key.

The helper must hand out Haiku's keys bit for bit (same splits, same order,
whatever mix of ``next``, ``reserve``, ``take`` and seeds), so that
``hk.dropout(next(rng), rate, x)`` in migrated code draws Haiku's masks; and the
``nn.Dropout(rate, deterministic=False)(x, rng=key)`` rewrite must then give
Haiku's numbers bit for bit, signed zeros, infinities and NaNs included.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import flax.linen as nn
import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flaxify.migrate import migrate_source

STREAM = '''
import haiku as hk


def stream(seed):
    seq = hk.PRNGSequence(seed)
    first = next(seq)
    seq.reserve(3)
    pair = [next(seq), seq.next()]
    taken = seq.take(4)
    key, pending = seq.internal_state
    resumed = hk.PRNGSequence(seq.internal_state)
    return [first, *pair, *taken, key, *pending, next(resumed), *resumed.take(2), next(iter(seq))]
'''

DROPOUT = '''
import haiku as hk


class Drop(hk.Module):
    def __call__(self, x, key):
        return hk.dropout(key, 0.5, x), hk.dropout(key, 0.25, x, broadcast_dims=(0,))
'''


def _run(source: str) -> dict[str, Any]:
    namespace: dict[str, Any] = {}
    exec(compile(source, "<migrated>", "exec"), namespace)  # noqa: S102 - the test's own source
    return namespace


def _migrated(source: str) -> str:
    return migrate_source(source.encode(), "case.py").source.decode()


def _bits(keys: list[Any]) -> np.ndarray:
    """The raw bits of a list of keys (raw uint32 keys or typed key arrays)."""
    return np.stack([np.asarray(jax.random.key_data(k) if jnp.issubdtype(k.dtype, jax.dtypes.prng_key) else k) for k in keys])


@pytest.fixture(scope="module")
def streams() -> SimpleNamespace:
    return SimpleNamespace(haiku=_run(STREAM)["stream"], flax=_run(_migrated(STREAM))["stream"])


@pytest.mark.parametrize(
    "seed",
    [42, jax.random.PRNGKey(3), jnp.int32(9), jax.random.key(5)],
    ids=["int", "raw-key", "int32-scalar", "typed-key"],
)
def test_key_stream_is_haikus_bit_for_bit(streams: SimpleNamespace, seed: Any) -> None:
    expected, got = _bits(streams.haiku(seed)), _bits(streams.flax(seed))
    assert expected.shape == got.shape
    np.testing.assert_array_equal(got, expected)


def test_key_stream_under_jit(streams: SimpleNamespace) -> None:
    """Seeded from a traced int32 scalar, as a model seeded from its input is."""
    expected = jax.jit(lambda s: streams.haiku(s))(jnp.int32(11))
    got = jax.jit(lambda s: streams.flax(s))(jnp.int32(11))
    np.testing.assert_array_equal(_bits(got), _bits(expected))


def test_helper_is_emitted_once_and_no_haiku_is_left() -> None:
    source = _migrated(STREAM + "\n\ndef other():\n    return next(hk.PRNGSequence(1))\n")
    assert source.count("class PRNGSequence:") == 1
    assert '"""Haiku\'s hk.PRNGSequence' in source
    assert "haiku" not in source.replace("Haiku's", "")
    assert "TODO(flaxify)" not in source
    assert not migrate_source(source.encode(), "case.py").changed


def test_a_class_of_the_same_name_keeps_the_todo() -> None:
    source = STREAM + "\n\nclass PRNGSequence:\n    pass\n"
    result = migrate_source(source.encode(), "case.py")
    assert [t.construct for t in result.todos] == ["hk.PRNGSequence", "hk.PRNGSequence"]
    assert "this file defines its own PRNGSequence" in result.todos[0].reason


def test_explicit_key_dropout_is_bit_exact_with_signed_zeros_and_non_finite_values() -> None:
    migrated = _migrated(DROPOUT)
    assert "nn.Dropout(0.5, deterministic=False)(x, rng=key)" in migrated
    values = np.random.default_rng(0).standard_normal((16, 33)).astype(np.float32)
    values[0, :6] = [np.inf, -np.inf, np.nan, -0.0, 0.0, -1e-30]
    x, key = jnp.asarray(values), jax.random.PRNGKey(4)
    haiku_drop = hk.transform(lambda x, key: _run(DROPOUT)["Drop"]()(x, key))
    expected = haiku_drop.apply({}, None, x, key)
    flax_drop: nn.Module = _run(migrated)["Drop"]()
    got = flax_drop.apply({}, x, key)
    for want, have in zip(expected, got, strict=True):
        assert np.asarray(want).dtype == np.asarray(have).dtype
        np.testing.assert_array_equal(np.asarray(have).view(np.uint32), np.asarray(want).view(np.uint32))
    assert np.any(np.asarray(expected[0]) == 0) and np.any(np.asarray(expected[0]) != values)  # something dropped


def test_the_class_as_a_type_or_value_becomes_the_helper_too() -> None:
    source = "import haiku as hk\n\n\ndef keys(rng: hk.PRNGSequence):\n    assert isinstance(rng, hk.PRNGSequence)\n    return next(rng)\n"
    result = migrate_source(source.encode(), "case.py")
    text = result.source.decode()
    assert result.todos == ()
    assert "def keys(rng: PRNGSequence):" in text and "isinstance(rng, PRNGSequence)" in text
    assert text.count("class PRNGSequence:") == 1
    namespace = _run(text)
    assert namespace["keys"](namespace["PRNGSequence"](0)).shape == (2,)
