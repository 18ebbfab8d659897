"""`flaxify check` on hk.next_rng_keys(n) and hk.reserve_rng_keys(n), and their migration.

Haiku's ``next_rng_keys(n)`` is one split of the sequence's key into ``n + 1``
(keys ``1..n``); its port splits one ``make_rng`` key into ``n``. No Flax key
can make that split give Haiku's keys, so the replay follows a record of the
Haiku apply's draws and answers the port's split with Haiku's ``n`` keys.
``reserve_rng_keys`` is deleted by migrate and replayed by the check. Real
Haiku, Flax and the real migrate engine throughout; the committed fixtures
``fixtures/migrate/rng/per_head_noise`` and ``reserve_rng_keys`` are the models.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import flax.linen as nn
import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flaxify.equivalence import compare, map_params, parse_spec
from flaxify.equivalence.report import Report
from flaxify.equivalence.rng_alignment import Draw, KeyReplay, haiku_key_order, trace_haiku_draws
from flaxify.migrate import migrate_source

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "migrate" / "rng"
FAST: dict[str, Any] = {"devices": "cpu", "init_seeds": 0, "run_probes": False}


def _load(path: Path, label: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"_flaxify_rngkeys_{label}_{path.stem.replace('.', '_')}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _fixture(stem: str) -> tuple[ModuleType, ModuleType]:
    return _load(FIXTURES / f"{stem}.before.py", "hk"), _load(FIXTURES / f"{stem}.after.py", "fx")


def _rngs(report: Report) -> set[str]:
    return {c.rng for c in report.checks}


def _haiku_draws(fn: Any, key: jax.Array) -> tuple[Draw, ...]:
    """The record of a Haiku function's draws from the apply key."""
    return trace_haiku_draws(lambda k: hk.transform(fn).apply({}, k), key)[1]


def _flax_keys(module: nn.Module, key: jax.Array, draws: tuple[Draw, ...] | None) -> tuple[jax.Array, KeyReplay]:
    replay = KeyReplay()
    with haiku_key_order(key, replay, draws):
        keys = jax.jit(lambda: module.apply({}, rngs={"dropout": key}))()
    return keys, replay


def test_the_replay_hands_the_split_haikus_next_rng_keys() -> None:
    key = jax.random.PRNGKey(3)

    def haiku_fn() -> jax.Array:
        return jnp.concatenate([hk.next_rng_key()[None], hk.next_rng_keys(3), hk.next_rng_key()[None]])

    class Port(nn.Module):
        @nn.compact
        def __call__(self) -> jax.Array:
            first = self.make_rng("dropout")[None]
            return jnp.concatenate(
                [first, jax.random.split(self.make_rng("dropout"), 3), self.make_rng("dropout")[None]]
            )

    draws = _haiku_draws(haiku_fn, key)
    assert draws == (Draw("next"), Draw("take", 3), Draw("next"))
    expected = hk.transform(haiku_fn).apply({}, key)
    original_split = jax.random.split
    got, replay = _flax_keys(Port(), key, draws)
    np.testing.assert_array_equal(np.asarray(got), np.asarray(expected))
    assert replay.aligned and replay.replayed == 3
    assert jax.random.split is original_split
    # One key split into three is not Haiku's three keys, nor is any other split of one draw.
    plain, _ = _flax_keys(Port(), key, None)
    assert not np.array_equal(np.asarray(plain[1:4]), np.asarray(expected[1:4]))
    assert not any(np.array_equal(np.asarray(expected[1:4]), np.asarray(jax.random.split(k, 3))) for k in plain)


def test_a_key_standing_for_next_rng_keys_used_otherwise_is_recorded() -> None:
    key = jax.random.PRNGKey(0)
    draws = _haiku_draws(lambda: hk.next_rng_keys(2), key)

    class Draws(nn.Module):
        """Two make_rng draws where Haiku took two keys in one split."""

        @nn.compact
        def __call__(self) -> jax.Array:
            return jnp.stack([self.make_rng("dropout"), self.make_rng("dropout")])

    class SplitsThree(nn.Module):
        @nn.compact
        def __call__(self) -> jax.Array:
            return jax.random.split(self.make_rng("dropout"), 3)

    for module in (Draws(), SplitsThree()):
        _, replay = _flax_keys(module, key, draws)
        assert replay.unsplit and not replay.aligned, type(module).__name__


def test_per_head_noise_compares_bitexact_in_every_phase() -> None:
    hk_mod, fx_mod = _fixture("per_head_noise")
    assert "jax.random.split(self.make_rng(" in (FIXTURES / "per_head_noise.after.py").read_text()
    x = [parse_spec("f32[4,6]")]
    report = compare(hk_mod.net, fx_mod.net, x, kwargs={"is_training": False}, **FAST)
    table = report.format_table()
    assert report.equivalent and report.bitexact and report.outputs_compared, table
    assert {c.phase for c in report.checks} >= {"eval", "grad", "train"}, table
    assert all(c.status == "compared" and c.rng == "haiku-keys" and c.bitexact for c in report.checks), table
    # The noise is real: other apply keys give other outputs.
    params = hk_mod.net.init(jax.random.PRNGKey(0), np.ones((4, 6), np.float32), is_training=True)
    outs = [
        hk_mod.net.apply(params, jax.random.PRNGKey(s), np.ones((4, 6), np.float32), is_training=False) for s in (0, 1)
    ]
    assert not np.array_equal(outs[0], outs[1])


class _Heads(nn.Module):
    """Hand ports of per_head_noise's NoisyHeads: ``keys`` says how the per-head keys are drawn."""

    keys: str

    @nn.compact
    def __call__(self, x: jax.Array, is_training: bool) -> jax.Array:
        h = nn.Dense(12, name="linear")(x)
        heads = h.reshape(x.shape[:-1] + (3, 4))
        if self.keys == "draws":
            keys = jnp.stack([self.make_rng("dropout") for _ in range(3)])
        elif self.keys == "first-only":  # a wrong port: every head gets the first key
            keys = jnp.stack([jax.random.split(self.make_rng("dropout"), 3)[0]] * 3)
        else:
            keys = jax.random.split(self.make_rng("dropout"), 3)
        noise = jnp.stack([jax.random.normal(k, heads.shape[:-2] + (4,)) for k in keys], axis=-2)
        heads = heads * (1.0 + (0.5 if is_training else 0.1) * noise)
        out = nn.Dense(6, name="linear_1")(heads.reshape(h.shape))
        return nn.Dropout(0.25, deterministic=not is_training)(out)


class _Root(nn.Module):
    keys: str

    @nn.compact
    def __call__(self, x: jax.Array, is_training: bool) -> jax.Array:
        return _Heads(self.keys, name="noisy_heads")(x, is_training)


@pytest.mark.parametrize(
    ("keys", "rng", "note"),
    [
        ("split", "haiku-keys", "hk.next_rng_keys(n) as the split of one key into n"),
        ("draws", "keys-disagree", "did not split its make_rng key into n keys"),
        ("first-only", "keys-disagree", "still differ with Haiku's key sequence"),
    ],
)
def test_hand_ports_compare_only_when_they_split_one_key(keys: str, rng: str, note: str) -> None:
    hk_mod, _ = _fixture("per_head_noise")
    report = compare(hk_mod.net, _Root(keys), [parse_spec("f32[4,6]")], kwargs={"is_training": False}, **FAST)
    table = report.format_table()
    assert report.equivalent and _rngs(report) == {rng}, table
    assert report.outputs_compared is (rng == "haiku-keys"), table
    assert any(note in n for n in report.notes), table


def test_a_split_of_next_rng_key_is_not_taken_for_next_rng_keys(tmp_path: Path) -> None:
    """``jax.random.split(hk.next_rng_key(), 3)`` migrates to the same text as ``hk.next_rng_keys(3)``."""
    source = (FIXTURES / "per_head_noise.before.py").read_text()
    source = source.replace("hk.next_rng_keys(self.num_heads)", "jax.random.split(hk.next_rng_key(), self.num_heads)")
    migrated = migrate_source(source.encode(), "model.py")
    assert not migrated.todos
    assert migrated.source == (FIXTURES / "per_head_noise.after.py").read_bytes()
    (tmp_path / "model.py").write_text(source)
    hk_mod = _load(tmp_path / "model.py", "split_of_next")
    _, fx_mod = _fixture("per_head_noise")
    report = compare(hk_mod.net, fx_mod.net, [parse_spec("f32[4,6]")], kwargs={"is_training": False}, **FAST)
    assert report.bitexact and _rngs(report) == {"haiku-keys"}, report.format_table()


def test_reserve_rng_keys_is_replayed_where_haiku_reserved() -> None:
    hk_mod, fx_mod = _fixture("reserve_rng_keys")
    key = jax.random.PRNGKey(0)
    x = np.ones((3, 4), np.float32)
    params = hk_mod.net.init(key, x)
    draws = trace_haiku_draws(lambda k: hk_mod.net.apply(params, k, x), key)[1]
    assert draws == (Draw("reserve", 2), Draw("next"), Draw("reserve", 3)) + (Draw("next"),) * 4
    report = compare(hk_mod.net, fx_mod.net, [parse_spec("f32[3,4]")], **FAST)
    table = report.format_table()
    assert report.equivalent and report.bitexact and _rngs(report) == {"haiku-keys"}, table
    # Without the reserves the same draws get other keys: the replay is what makes them compare.
    variables = map_params(params, {}, jax.eval_shape(lambda: fx_mod.net.init(key, x)), root_is_module=False)
    replay = KeyReplay()
    with haiku_key_order(key, replay):
        plain = jax.jit(lambda v: fx_mod.net.apply(v, x, rngs={"dropout": key}))(variables)
    assert not np.array_equal(np.asarray(plain), np.asarray(hk_mod.net.apply(params, key, x)))


@pytest.mark.parametrize(
    ("statement", "deleted"),
    [
        ("hk.reserve_rng_keys(2)", True),
        ("hk.reserve_rng_keys(num=self.n)", True),
        ("reserve_rng_keys(2)", True),  # imported by name
        ("used = hk.reserve_rng_keys(2)", False),  # its value read: not the bare statement
        ("hk.reserve_rng_keys(2)  # split ahead", False),  # deleting the line would delete the comment
        ("hk.reserve_rng_keys(2); x = x + 1", False),
    ],
)
def test_migrate_deletes_only_the_bare_reserve_statement(statement: str, deleted: bool) -> None:
    source = (
        "import haiku as hk\nfrom haiku import reserve_rng_keys\n\n\n"
        "class Noisy(hk.Module):\n    n = 2\n\n    def __call__(self, x):\n"
        f"        if x.ndim:\n            {statement}\n"
        "        return x + jax.random.normal(hk.next_rng_key(), x.shape)\n"
    )
    result = migrate_source(source.encode(), "model.py")
    text = result.source.decode()
    if deleted:
        assert "reserve_rng_keys" not in text and not result.todos, text
        assert "        if x.ndim:\n            pass\n" in text  # the block stays valid Python
    else:
        assert statement in text and [t.construct for t in result.todos] == ["hk.reserve_rng_keys"], text
    assert 'self.make_rng("dropout")' in text
    compile(text, "model.py", "exec")
