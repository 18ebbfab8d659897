"""`flaxify convert-params`: a trained Haiku checkpoint becomes Flax variables that reproduce it."""

from __future__ import annotations

import pickle
from pathlib import Path

import jax
import numpy as np
import pytest
from flax import serialization

from flaxify.cli import main
from flaxify.equivalence.convert import save_npz
from flaxify.equivalence.refs import resolve_ref

ZOO = Path(__file__).resolve().parent.parent / "fixtures" / "zoo"
HAIKU = f"{ZOO}/batchnorm/haiku_model.py:net"
FLAX = f"{ZOO}/batchnorm/flax_model.py:net"
ARGS = ["--input", "f32[6,5]", "--kwargs", '{"is_training": false}']


@pytest.fixture(scope="module")
def trained():
    """Haiku params and state after a few SGD steps: not what init would give."""
    net = resolve_ref(HAIKU)
    x = jax.random.normal(jax.random.PRNGKey(1), (6, 5)) * 2 + 0.5
    params, state = net.init(jax.random.PRNGKey(7), x, True)

    def loss(p, s):
        out, s = net.apply(p, s, None, x, True)
        return (out**2).mean(), s

    for _ in range(3):
        grads, state = jax.grad(loss, has_aux=True)(params, state)
        params = jax.tree.map(lambda p, g: p - 0.1 * g, params, grads)
    return jax.device_get(params), jax.device_get(state)


def _haiku_eval(params, state, x):
    return np.asarray(resolve_ref(HAIKU).apply(params, state, None, x, False)[0])


def _flax_eval(variables, x):
    return np.asarray(jax.jit(lambda v, x: resolve_ref(FLAX).apply(v, x, False))(variables, x))


def test_npz_checkpoint_converts_to_msgpack_and_reproduces_outputs(tmp_path, trained, capsys):
    params, state = trained
    save_npz(tmp_path / "ckpt.npz", params, state)
    out = tmp_path / "flax.msgpack"
    assert main(["convert-params", HAIKU, FLAX, str(tmp_path / "ckpt.npz"), "-o", str(out), *ARGS]) == 0, (
        capsys.readouterr().err
    )
    variables = serialization.msgpack_restore(out.read_bytes())
    assert set(variables) == {"params", "batch_stats"}
    np.testing.assert_array_equal(
        variables["batch_stats"]["batch_norm"]["mean"], state["batch_norm/~/mean_ema"]["average"].reshape(-1)
    )
    x = np.random.default_rng(3).standard_normal((6, 5)).astype(np.float32)
    np.testing.assert_allclose(_flax_eval(variables, x), _haiku_eval(params, state, x), rtol=1e-6, atol=1e-6)


def test_orbax_directory_output(tmp_path, trained, capsys):
    ocp = pytest.importorskip("orbax.checkpoint")
    params, state = trained
    save_npz(tmp_path / "ckpt.npz", params, state)
    out = tmp_path / "orbax_ckpt"
    assert main(["convert-params", HAIKU, FLAX, str(tmp_path / "ckpt.npz"), "-o", str(out), *ARGS]) == 0, (
        capsys.readouterr().err
    )
    with ocp.StandardCheckpointer() as checkpointer:
        restored = checkpointer.restore(out.absolute())
    np.testing.assert_array_equal(restored["params"]["linear"]["kernel"], params["linear"]["w"])


def test_existing_output_is_not_overwritten_without_force(tmp_path, trained, capsys):
    save_npz(tmp_path / "ckpt.npz", *trained)
    out = tmp_path / "flax.msgpack"
    out.write_bytes(b"keep me")
    assert main(["convert-params", HAIKU, FLAX, str(tmp_path / "ckpt.npz"), "-o", str(out), *ARGS]) == 2
    assert "already exists" in capsys.readouterr().err
    assert out.read_bytes() == b"keep me"
    assert main(["convert-params", HAIKU, FLAX, str(tmp_path / "ckpt.npz"), "-o", str(out), "--force", *ARGS]) == 0
    assert out.read_bytes() != b"keep me"


def test_pickle_needs_allow_pickle(tmp_path, trained, capsys):
    params, state = trained
    path = tmp_path / "ckpt.pkl"
    path.write_bytes(pickle.dumps({"params": params, "state": state}))
    out = tmp_path / "flax.msgpack"
    assert main(["convert-params", HAIKU, FLAX, str(path), "-o", str(out), *ARGS]) == 2
    assert "--allow-pickle" in capsys.readouterr().err
    assert not out.exists()
    assert main(["convert-params", HAIKU, FLAX, str(path), "-o", str(out), "--allow-pickle", *ARGS]) == 0
    assert out.exists()


def test_checkpoint_that_does_not_fit_writes_nothing(tmp_path, trained, capsys):
    save_npz(tmp_path / "ckpt.npz", *trained)
    out = tmp_path / "flax.msgpack"
    other = tmp_path / "other.py"
    other.write_text(
        "import flax.linen as nn\n\nclass F(nn.Module):\n    @nn.compact\n    def __call__(self, x, is_training):\n"
        "        x = nn.Dense(4, name='linear')(x)\n"
        "        x = nn.BatchNorm(momentum=0.9, name='batch_norm')(x, use_running_average=not is_training)\n"
        "        return nn.Dense(3, name='linear_1')(x)\n\nnet = F()\n"
    )
    assert main(["convert-params", HAIKU, f"{other}:net", str(tmp_path / "ckpt.npz"), "-o", str(out), *ARGS]) == 1
    err = capsys.readouterr().err
    assert "linear/w" in err and "(5, 8)" in err and "(5, 4)" in err
    assert not out.exists()


def test_wrong_momentum_is_caught_by_the_training_step_before_writing(tmp_path, trained, capsys):
    # Evaluation outputs agree (momentum only acts in training), but the
    # verification also takes one training step from the converted state.
    save_npz(tmp_path / "ckpt.npz", *trained)
    out = tmp_path / "flax.msgpack"
    wrong = f"{ZOO}/batchnorm/flax_wrong_momentum.py:net"
    assert main(["convert-params", HAIKU, wrong, str(tmp_path / "ckpt.npz"), "-o", str(out), *ARGS]) == 1
    assert "batch_stats/batch_norm/mean" in capsys.readouterr().err
    assert not out.exists()


def test_missing_checkpoint_exits_2(tmp_path, capsys):
    assert (
        main(["convert-params", HAIKU, FLAX, str(tmp_path / "none.npz"), "-o", str(tmp_path / "o.msgpack"), *ARGS]) == 2
    )
    assert "no such checkpoint file" in capsys.readouterr().err


def test_force_replaces_an_orbax_directory(tmp_path, trained, capsys):
    pytest.importorskip("orbax.checkpoint")
    save_npz(tmp_path / "ckpt.npz", *trained)
    out = tmp_path / "orbax_ckpt"
    out.mkdir()
    (out / "old.txt").write_text("old")
    args = ["convert-params", HAIKU, FLAX, str(tmp_path / "ckpt.npz"), "-o", str(out), *ARGS]
    assert main(args) == 2 and (out / "old.txt").exists()
    assert main([*args, "--force"]) == 0, capsys.readouterr().err
    assert not (out / "old.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir() if "flaxify-tmp" in p.name) == []


NOISY_STACK = (Path(__file__).resolve().parent.parent / "fixtures" / "haiku_models" / "noisy_layer_stack.py").read_text()


def test_a_model_whose_outputs_cannot_be_compared_is_not_converted(tmp_path, capsys):
    """Every output samples inside a lifted scan: the mapping is fine, but nothing proves the outputs."""
    from flaxify.migrate import migrate_source

    (tmp_path / "hk").mkdir()
    (tmp_path / "fx").mkdir()
    (tmp_path / "hk" / "noisy.py").write_text(NOISY_STACK)
    migrated = migrate_source(NOISY_STACK.encode(), "noisy.py")
    assert not migrated.todos
    (tmp_path / "fx" / "noisy.py").write_bytes(migrated.source)
    haiku_ref, flax_ref = f"{tmp_path}/hk/noisy.py:net", f"{tmp_path}/fx/noisy.py:net"
    x = np.ones((2, 8), np.float32)
    params = jax.device_get(resolve_ref(haiku_ref).init(jax.random.PRNGKey(0), x))
    save_npz(tmp_path / "ckpt.npz", params)
    out = tmp_path / "flax.msgpack"
    code = main(["convert-params", haiku_ref, flax_ref, str(tmp_path / "ckpt.npz"), "-o", str(out), "--input", "f32[2,8]"])
    err = capsys.readouterr().err
    assert code == 1, err
    assert "no output was compared" in err and "nothing written" in err
    assert not out.exists()
