"""`flaxify check` on models that draw random numbers: Haiku's keys replayed into Flax, or an honest report.

Haiku models are migrated by the real engine (``migrate_source``) and compared
with :func:`flaxify.equivalence.compare` on CPU: a VAE that samples in every
mode, a dropout MLP in training mode (``hk.dropout`` vs the migrated
``nn.Dropout``), a ``layer_stack`` with dropout (``nn.scan`` splits keys: not
comparable), a stack that samples in every phase (nothing comparable: the
verdict says so), hand-written twins that draw keys in another order, and a
port that leaves dropout on in evaluation (still NOT EQUIVALENT).
"""

from __future__ import annotations

import importlib.util
import json
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

from flaxify.equivalence import compare, parse_spec
from flaxify.equivalence.report import Report
from flaxify.equivalence.rng_alignment import KeyReplay, haiku_key_order
from flaxify.migrate import migrate_source

FAST: dict[str, Any] = {"devices": "cpu", "init_seeds": 0, "run_probes": False}

VAE = '''
import haiku as hk
import jax
import jax.numpy as jnp


class Encoder(hk.Module):
    def __init__(self, latent, name=None):
        super().__init__(name=name)
        self.latent = latent

    def __call__(self, x, is_training):
        h = jax.nn.relu(hk.Linear(8)(x))
        h = hk.BatchNorm(create_scale=True, create_offset=True, decay_rate=0.9)(h, is_training)
        return hk.Linear(self.latent, name="mu")(h), hk.Linear(self.latent, name="logvar")(h)


def vae_fn(x, is_training):
    mu, logvar = Encoder(latent=3)(x, is_training)
    z = mu + jnp.exp(0.5 * logvar) * jax.random.normal(hk.next_rng_key(), mu.shape)
    return hk.Linear(6, name="decoder")(z), mu, logvar


vae = hk.transform_with_state(vae_fn)
'''

DROPOUT_MLP = '''
import haiku as hk
import jax


class Mlp(hk.Module):
    def __call__(self, x, is_training):
        x = jax.nn.relu(hk.Linear(16)(x))
        x = hk.dropout(hk.next_rng_key(), 0.5, x) if is_training else x
        x = jax.nn.relu(hk.Linear(16)(x))
        x = hk.dropout(hk.next_rng_key(), 0.25, x) if is_training else x
        return hk.Linear(4)(x)


def forward(x, is_training):
    return Mlp()(x, is_training)


net = hk.transform(forward)
'''

LAYER_STACK_DROPOUT = '''
import haiku as hk
import jax


class Block(hk.Module):
    def __call__(self, x, is_training):
        x = jax.nn.relu(hk.Linear(8)(x))
        return hk.dropout(hk.next_rng_key(), 0.5, x) if is_training else x


def forward(x, is_training):
    @hk.layer_stack(3)
    def stack(x):
        return Block()(x, is_training)

    return stack(x)


net = hk.transform(forward)
'''

# Dropout only when the caller passes a key: a draw that a key-less probe of the call cannot see.
MAYBE_KEY = '''
import haiku as hk
import jax


class Head(hk.Module):
    def __call__(self, x):
        x = jax.nn.relu(hk.Linear(8)(x))
        rng = hk.maybe_next_rng_key()
        x = x if rng is None else hk.dropout(rng, 0.5, x)
        return hk.Linear(2)(x)


def forward(x):
    return Head()(x)


net = hk.transform(forward)
'''

# Samples in every call (no mode flag) and only inside the stack: no phase can be replayed.
LAYER_STACK_NOISE = (Path(__file__).resolve().parent.parent / "fixtures" / "haiku_models" / "noisy_layer_stack.py").read_text()


def _load(source: str, path: Path) -> ModuleType:
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(f"_flaxify_rng_{path.parent.name}_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _migrated_pair(source: str, tmp_path: Path) -> tuple[ModuleType, ModuleType]:
    """The Haiku module and its migration by the real engine, both imported from files."""
    migrated = migrate_source(source.encode(), "model.py")
    assert not migrated.todos, migrated.todos
    (tmp_path / "hk").mkdir()
    (tmp_path / "fx").mkdir()
    return _load(source, tmp_path / "hk" / "model.py"), _load(migrated.source.decode(), tmp_path / "fx" / "model.py")


def _phase(report: Report, phase: str) -> list[Any]:
    checks = [c for c in report.checks if c.phase == phase]
    assert checks, report.format_table()
    return checks


def test_make_rng_replays_haikus_next_rng_key_sequence_and_is_restored() -> None:
    key = jax.random.PRNGKey(7)
    haiku_keys = hk.transform(lambda: jnp.stack([hk.next_rng_key() for _ in range(3)])).apply({}, key)

    class Child(nn.Module):
        @nn.compact
        def __call__(self) -> jax.Array:
            return self.make_rng("dropout")

    class Parent(nn.Module):
        @nn.compact
        def __call__(self) -> jax.Array:
            first = self.make_rng("dropout")
            return jnp.stack([first, Child()(), self.make_rng("dropout")])

    original = nn.Module.make_rng
    replay = KeyReplay()
    with haiku_key_order(key, replay):
        flax_keys = jax.jit(lambda: Parent().apply({}, rngs={"dropout": key}))()
    np.testing.assert_array_equal(np.asarray(flax_keys), np.asarray(haiku_keys))
    assert replay.replayed == 3 and replay.aligned
    assert nn.Module.make_rng is original
    # Without the replay Flax derives other keys (path and counter folded in).
    assert not np.array_equal(np.asarray(Parent().apply({}, rngs={"dropout": key})), np.asarray(haiku_keys))
    with pytest.raises(RuntimeError), haiku_key_order(key, KeyReplay()):
        raise RuntimeError("user code failed")
    assert nn.Module.make_rng is original


def test_vae_sampling_in_every_mode_compares_bitexact_with_haikus_keys(tmp_path: Path) -> None:
    hk_mod, fx_mod = _migrated_pair(VAE, tmp_path)
    x = parse_spec("f32[4,5]")
    report = compare(hk_mod.vae, fx_mod.vae, [x], kwargs={"is_training": False}, **FAST)
    table = report.format_table()
    assert report.equivalent and report.bitexact and report.outputs_compared, table
    for phase in ("eval", "grad", "train", "state"):
        assert all(c.status == "compared" and c.rng == "haiku-keys" and c.bitexact for c in _phase(report, phase))
    assert any("compared with Haiku's key sequence" in n for n in report.notes), table
    # The sample really is random and Flax's own keys differ: the replay is what makes it comparable.
    params, state = hk_mod.vae.init(jax.random.PRNGKey(0), x, is_training=True)
    key = jax.random.PRNGKey(0)
    (recon, mu, _), _ = hk_mod.vae.apply(params, state, key, x, is_training=False)
    (other, _, _), _ = hk_mod.vae.apply(params, state, jax.random.PRNGKey(1), x, is_training=False)
    assert not np.array_equal(recon, other)
    from flaxify.equivalence import map_params

    variables = map_params(params, state, jax.eval_shape(lambda: fx_mod.vae.init(key, x, True)), root_is_module=False)
    fx_recon, fx_mu, _ = fx_mod.vae.apply(variables, x, False, rngs={"dropout": key})
    np.testing.assert_array_equal(fx_mu, mu)
    assert not np.array_equal(fx_recon, recon)


def test_dropout_mlp_training_mode_is_bitexact_with_aligned_keys(tmp_path: Path) -> None:
    hk_mod, fx_mod = _migrated_pair(DROPOUT_MLP, tmp_path)
    assert "nn.Dropout(" in (tmp_path / "fx" / "model.py").read_text()
    x = parse_spec("f32[4,6]")
    report = compare(hk_mod.net, fx_mod.net, [x], kwargs={"is_training": False}, **FAST)
    (train,) = _phase(report, "train")
    assert train.status == "compared" and train.rng == "haiku-keys" and train.bitexact, report.format_table()
    # Evaluation draws nothing in either model: compared plainly.
    assert all(c.rng == "" and c.bitexact for c in _phase(report, "eval"))
    assert report.equivalent and report.bitexact
    # The masks are real: training output differs from evaluation output.
    params = hk_mod.net.init(jax.random.PRNGKey(0), x, is_training=True)
    key = jax.random.PRNGKey(0)
    assert not np.array_equal(
        hk_mod.net.apply(params, key, x, is_training=True), hk_mod.net.apply(params, key, x, is_training=False)
    )


def test_layer_stack_dropout_falls_back_to_reported_with_the_reason(tmp_path: Path) -> None:
    hk_mod, fx_mod = _migrated_pair(LAYER_STACK_DROPOUT, tmp_path)
    assert "nn.scan(" in (tmp_path / "fx" / "model.py").read_text()
    report = compare(hk_mod.net, fx_mod.net, [parse_spec("f32[2,8]")], kwargs={"is_training": False}, **FAST)
    table = report.format_table()
    (train,) = _phase(report, "train")
    assert train.status == "stochastic" and train.rng == "lifted", table
    assert any("lifted transform" in n and "not compared" in n for n in report.notes), table
    assert all(c.status == "compared" and c.bitexact for c in _phase(report, "eval"))
    assert report.equivalent and report.outputs_compared
    assert table.splitlines()[-1].endswith("1 stochastic check not compared)")


def test_nothing_comparable_says_so_in_the_verdict_and_json(tmp_path: Path) -> None:
    hk_mod, fx_mod = _migrated_pair(LAYER_STACK_NOISE, tmp_path)
    report = compare(hk_mod.net, fx_mod.net, [parse_spec("f32[2,8]")], devices="cpu", init_seeds=4)
    table = report.format_table()
    assert report.checks and all(c.status == "stochastic" and c.rng == "lifted" for c in report.checks), table
    assert report.equivalent and not report.outputs_compared and not report.bitexact
    assert table.splitlines()[-1] == (
        "EQUIVALENT (parameters and initializers; outputs draw random numbers and were not compared: "
        "pass kwargs that turn sampling off)"
    )
    data = json.loads(json.dumps(report.to_json()))
    assert data["outputs_compared"] is False and data["equivalent"] is True
    assert {c["rng"] for c in data["checks"]} == {"lifted"}


def test_maybe_next_rng_key_counts_as_drawing(tmp_path: Path) -> None:
    hk_mod, fx_mod = _migrated_pair(MAYBE_KEY, tmp_path)
    assert "has_rng(" in (tmp_path / "fx" / "model.py").read_text()
    x = [parse_spec("f32[3,5]")]
    report = compare(hk_mod.net, fx_mod.net, x, **FAST)
    assert all(c.rng == "haiku-keys" and c.bitexact for c in report.checks), report.format_table()

    class OtherKey(nn.Module):
        """Draws its dropout key from a split of the stream key: another order than Haiku's."""

        @nn.compact
        def __call__(self, x: jax.Array) -> jax.Array:
            x = jax.nn.relu(nn.Dense(8, name="linear")(x))
            key = jax.random.split(self.make_rng("dropout"))[0]
            return nn.Dense(2, name="linear_1")(nn.Dropout(0.5, deterministic=False)(x, rng=key))

    class Root(nn.Module):
        @nn.compact
        def __call__(self, x: jax.Array) -> jax.Array:
            return OtherKey(name="head")(x)

    other = compare(hk_mod.net, Root(), x, **FAST)
    assert other.equivalent and {c.rng for c in other.checks} == {"keys-disagree"}, other.format_table()


def _sampling_twins() -> tuple[Any, type[nn.Module], type[nn.Module]]:
    """A Haiku model scaling by noise, a Flax twin drawing the same key, one drawing another key.

    Multiplicative noise, so the gradients depend on the key too (additive noise
    leaves them equal whatever the keys, and they would rightly compare).
    """

    def forward(x: jax.Array) -> jax.Array:
        h = hk.Linear(4, name="linear")(x)
        return h * jax.random.normal(hk.next_rng_key(), h.shape)

    class Same(nn.Module):
        @nn.compact
        def __call__(self, x: jax.Array) -> jax.Array:
            h = nn.Dense(4, name="linear")(x)
            return h * jax.random.normal(self.make_rng("dropout"), h.shape)

    class OtherKey(nn.Module):
        @nn.compact
        def __call__(self, x: jax.Array) -> jax.Array:
            h = nn.Dense(4, name="linear")(x)
            return h * jax.random.normal(jax.random.split(self.make_rng("dropout"))[1], h.shape)

    return hk.transform(forward), Same, OtherKey


def test_keys_drawn_in_another_order_are_reported_not_failed() -> None:
    net, same, other = _sampling_twins()
    x = [parse_spec("f32[3,5]")]
    assert all(c.rng == "haiku-keys" and c.bitexact for c in compare(net, same(), x, **FAST).checks)
    report = compare(net, other(), x, **FAST)
    table = report.format_table()
    assert report.equivalent and not report.outputs_compared, table
    assert {c.rng for c in report.checks} == {"keys-disagree"}, table
    assert any("draw keys in another order or number" in n for n in report.notes), table


def test_dropout_left_on_in_evaluation_is_still_not_equivalent(tmp_path: Path) -> None:
    hk_mod = _load(DROPOUT_MLP, tmp_path / "model.py")

    class AlwaysDropping(nn.Module):
        """A wrong port: dropout ignores the mode flag."""

        @nn.compact
        def __call__(self, x: jax.Array, is_training: bool) -> jax.Array:
            x = nn.Dropout(0.5, deterministic=False)(jax.nn.relu(nn.Dense(16, name="linear")(x)))
            x = nn.Dropout(0.25, deterministic=False)(jax.nn.relu(nn.Dense(16, name="linear_1")(x)))
            return nn.Dense(4, name="linear_2")(x)

    class Root(nn.Module):
        @nn.compact
        def __call__(self, x: jax.Array, is_training: bool) -> jax.Array:
            return AlwaysDropping(name="mlp")(x, is_training)

    report = compare(hk_mod.net, Root(), [parse_spec("f32[4,6]")], kwargs={"is_training": False}, **FAST)
    (evaluation,) = _phase(report, "eval")
    assert evaluation.status == "compared" and not evaluation.ok, report.format_table()
    assert not report.equivalent
