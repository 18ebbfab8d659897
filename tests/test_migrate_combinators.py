"""Recurrent combinators, EMAParamsTree and the tuple hk.multi_transform: the programs around the model.

``fixtures/migrate`` checks each model's outputs bit-exactly against Haiku; these
tests check what that cannot see: the *structure* of the recurrent state a
migrated ``DeepRNN`` / ``ResetCore`` / ``IdentityCore`` returns (the training
loop carries it), the EMA state of ``EMAParamsTree`` over several steps, and the
rewritten call sites of a tuple ``hk.multi_transform`` (unpacked and jitted
apply functions) run with converted parameters.
"""

from __future__ import annotations

import importlib.util
import sys
import textwrap
from pathlib import Path
from types import ModuleType
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from flaxify.migrate import migrate_source

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "migrate"

CORES = textwrap.dedent(
    '''
    import haiku as hk
    import jax
    import jax.numpy as jnp


    def forward(xs, resets):
        deep = hk.DeepRNN([hk.LSTM(3), jax.nn.relu, hk.IdentityCore(), hk.GRU(2)])
        deep_state = deep.initial_state(xs.shape[1])
        outs, last = hk.dynamic_unroll(deep, xs, deep_state, return_all_states=True)
        reset = hk.ResetCore(hk.LSTM(2))
        outs2, reset_state = hk.static_unroll(reset, (xs, resets), reset.initial_state(xs.shape[1]))
        return deep_state, last, reset_state, outs, outs2


    net = hk.without_apply_rng(hk.transform(forward))
    '''
)


def _load(path: Path, label: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"_flaxify_combinators_{label}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _pair(source: str, tmp_path: Path, label: str) -> tuple[ModuleType, ModuleType]:
    """The Haiku program and its migration, both imported."""
    before, after = tmp_path / f"{label}_hk.py", tmp_path / f"{label}_flax.py"
    before.write_text(source)
    result = migrate_source(source.encode(), str(before))
    assert not result.todos, result.todos
    after.write_bytes(result.source)
    return _load(before, f"{label}_hk"), _load(after, f"{label}_flax")


def _paths(tree: Any) -> list[str]:
    """Key paths of every leaf: the same for Haiku's LSTMState and the emitted one."""
    return [jax.tree_util.keystr(path) for path, _ in jax.tree_util.tree_flatten_with_path(tree)[0]]


def _shapes(tree: Any) -> list[tuple[int, ...]]:
    return [np.shape(leaf) for leaf in jax.tree.leaves(tree)]


def test_core_combinators_keep_haikus_state_structure(tmp_path: Path) -> None:
    hk_mod, fx_mod = _pair(CORES, tmp_path, "cores")
    xs = jnp.linspace(-1.0, 1.0, 5 * 2 * 4).reshape(5, 2, 4)
    resets = jnp.array([[False, True], [True, False], [False, False], [True, True], [False, True]])
    hk_out = hk_mod.net.apply(hk_mod.net.init(jax.random.PRNGKey(0), xs, resets), xs, resets)
    fx_out = fx_mod.net.apply(fx_mod.net.init(jax.random.PRNGKey(0), xs, resets), xs, resets)
    assert _paths(hk_out) == _paths(fx_out)
    assert _shapes(hk_out) == _shapes(fx_out)
    # DeepRNN: one entry per core (LSTM, IdentityCore's (), GRU); relu holds no state.
    deep_state = fx_out[0]
    assert isinstance(deep_state, tuple) and len(deep_state) == 3 and deep_state[1] == ()
    assert type(deep_state[0]).__name__ == "LSTMState"


def test_reset_core_restarts_exactly_where_told(tmp_path: Path) -> None:
    """A reset at step t makes step t start from zeros: the same as a fresh unroll from t."""
    _, fx_mod = _pair(CORES, tmp_path, "reset")
    xs = jnp.linspace(-1.0, 1.0, 5 * 2 * 4).reshape(5, 2, 4)
    never = jnp.zeros((5, 2), bool)
    at_two = never.at[2, 0].set(True)
    variables = fx_mod.net.init(jax.random.PRNGKey(1), xs, never)
    full = fx_mod.net.apply(variables, xs, at_two)[4]
    tail = fx_mod.net.apply(variables, xs[2:], never[2:])[4]
    np.testing.assert_array_equal(full[2:, 0], tail[:, 0])  # batch entry 0 restarted at t=2
    untouched = fx_mod.net.apply(variables, xs, never)[4]
    np.testing.assert_array_equal(full[:, 1], untouched[:, 1])  # entry 1 never reset


def _flat(tree: Any, prefix: str = "") -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        out.update(_flat(value, path + "/") if hasattr(value, "items") else {path: np.asarray(value)})
    return out


def test_ema_params_tree_state_follows_haiku_over_steps() -> None:
    name = "state/ema_params_tree"
    hk_mod = _load(FIXTURES / f"{name}.before.py", "ema_hk")
    fx_mod = _load(FIXTURES / f"{name}.after.py", "ema_flax")
    x = jnp.linspace(-2.0, 2.0, 12).reshape(4, 3)
    _, hk_state = hk_mod.average(x, steps=4)
    _, fx_state = fx_mod.average(x, steps=4)
    hk_flat = _flat(hk_state)
    fx_flat = {k.removeprefix("state/"): v for k, v in _flat(fx_state).items()}
    assert sorted(hk_flat) == sorted(fx_flat)
    for key, value in hk_flat.items():
        np.testing.assert_array_equal(value, fx_flat[key], err_msg=key)
    assert int(fx_flat["warm/linear__w/counter"]) == 2  # warm-up started at -2


def test_tuple_multi_transform_call_sites_run_with_converted_params() -> None:
    name = "transform/multi_transform_tuple"
    hk_mod = _load(FIXTURES / f"{name}.before.py", "multi_hk")
    fx_mod = _load(FIXTURES / f"{name}.after.py", "multi_flax")
    x = jnp.linspace(-1.0, 1.0, 24).reshape(3, 8)
    hk_params = hk_mod.model.init(jax.random.PRNGKey(0), x)
    fx_params = {
        layer: {"kernel": hk_params[f"auto_encoder/~/{layer}"]["w"], "bias": hk_params[f"auto_encoder/~/{layer}"]["b"]}
        for layer in ("encoder", "decoder")
    }
    np.testing.assert_array_equal(hk_mod.decode_jitted(hk_params, x), fx_mod.decode_jitted(fx_params, x))
    assert fx_mod.reconstruct(x).shape == hk_mod.reconstruct(x).shape == (3, 8)


MULTI_INIT_FORMS = textwrap.dedent(
    '''
    import haiku as hk


    class AE(hk.Module):
        def __init__(self, name=None):
            super().__init__(name=name)
            self.encoder = hk.Linear(3)

        def encode(self, x):
            return self.encoder(x)

        def __call__(self, x, y):
            return self.encode(x) + y


    def forwarding_def():
        ae = AE()

        def init(x, y):
            return ae(x, y)

        return init, [ae.encode]


    def reordering_lambda():
        ae = AE()
        return (lambda x, y: ae(y, x)), [ae.encode]


    net = hk.without_apply_rng(hk.multi_transform(forwarding_def))
    other = hk.without_apply_rng(hk.multi_transform(reordering_lambda))
    '''
)


def test_multi_transform_init_must_forward_its_parameters_unchanged() -> None:
    """A def forwarding ``(x, y)`` is Flax's ``init``; a lambda that swaps them is not, and stays a TODO."""
    result = migrate_source(MULTI_INIT_FORMS.encode(), "forms.py")
    text = result.source.decode()
    assert "net = AE()" in text and "def forwarding_def" not in text
    assert [todo.construct for todo in result.todos] == ["hk.multi_transform"]
    assert "other = hk.without_apply_rng(hk.multi_transform(reordering_lambda))" in text


EMA_PROGRAM = textwrap.dedent(
    '''
    import haiku as hk
    import jax
    import jax.numpy as jnp

    network = hk.without_apply_rng(hk.transform(lambda x: hk.nets.MLP([4, 2])(x)))
    ema_fn = hk.transform_with_state(lambda p: hk.EMAParamsTree(0.2)(p))


    def polyak(params, x, steps=3):
        _, ema_state = ema_fn.init(None, params)
        for _ in range(steps):
            params = jax.tree.map(lambda p: p * 0.5 + 1.0, params)
            ema_params, ema_state = ema_fn.apply(None, ema_state, None, params)
        return network.apply(ema_params, x)
    '''
)


def test_ema_params_tree_documented_program_runs_the_same(tmp_path: Path) -> None:
    """Haiku's own EMAParamsTree example (param-less transform_with_state, init/apply with None)."""
    hk_mod, fx_mod = _pair(EMA_PROGRAM, tmp_path, "ema_program")
    x = jnp.linspace(-1.0, 1.0, 6).reshape(2, 3)
    hk_params = hk_mod.network.init(jax.random.PRNGKey(0), x)
    fx_params = {
        "mlp": {
            layer: {"kernel": hk_params[f"mlp/~/{layer}"]["w"], "bias": hk_params[f"mlp/~/{layer}"]["b"]}
            for layer in ("linear_0", "linear_1")
        }
    }
    np.testing.assert_array_equal(hk_mod.polyak(hk_params, x), fx_mod.polyak(fx_params, x))
