"""map_params: the by-name rule, layer layout rules, structural fallback, and honest errors."""

from __future__ import annotations

import flax.linen as nn
import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flaxify.equivalence import ParamMappingError, build_plan, map_params
from flaxify.equivalence.flax_side import module_table

KEY = jax.random.PRNGKey(0)


@pytest.fixture(autouse=True)
def _highest_precision():
    with jax.default_matmul_precision("highest"):
        yield


def _template(module: nn.Module, *args, **kwargs):
    return jax.eval_shape(lambda k: module.init(k, *args, **kwargs), KEY)


def _roundtrip(haiku_fn, module: nn.Module, x, *, root_is_module=False, **kwargs):
    """Maps Haiku params onto ``module`` and returns both outputs."""
    t = hk.without_apply_rng(hk.transform(haiku_fn))
    params = t.init(KEY, x, **kwargs)
    variables = map_params(params, None, _template(module, x, **kwargs), root_is_module=root_is_module)
    hk_out = jax.jit(lambda p, x: t.apply(p, x, **kwargs))(params, x)  # both jitted: same XLA fusions
    fx_out = jax.jit(lambda v, x: module.apply(v, x, **kwargs))(variables, x)
    return np.asarray(hk_out), np.asarray(fx_out)


def test_name_rule_drops_tilde_and_keeps_method_scopes():
    class Block(hk.Module):
        def __init__(self, name=None):
            super().__init__(name=name)
            self.pre = hk.Linear(4, name="pre")

        def __call__(self, x):
            return self.encode(self.pre(x))

        def encode(self, x):
            return hk.Linear(3)(x)

    class FlaxBlock(nn.Module):
        def setup(self):
            self.pre = nn.Dense(4)

        def __call__(self, x):
            return self.encode(self.pre(x))

        @nn.compact_name_scope
        def encode(self, x):
            return nn.Dense(3, name="linear")(x)

    class Wrapper(nn.Module):
        @nn.compact
        def __call__(self, x):
            return FlaxBlock(name="block")(x)

    x = jnp.ones((2, 5))
    hk_out, fx_out = _roundtrip(lambda x: Block()(x), Wrapper(), x)
    np.testing.assert_array_equal(hk_out, fx_out)


def test_top_level_tilde_bucket_lands_at_flax_root():
    def f(x):
        return x * hk.get_parameter("gain", [3], init=hk.initializers.RandomNormal())

    class Gain(nn.Module):
        @nn.compact
        def __call__(self, x):
            return x * self.param("gain", nn.initializers.normal(1.0), (3,))

    hk_out, fx_out = _roundtrip(f, Gain(), jnp.arange(6.0).reshape(2, 3))
    np.testing.assert_array_equal(hk_out, fx_out)


def test_module_subclass_drops_its_own_name():
    class Net(hk.Module):
        def __call__(self, x):
            return hk.Linear(2)(x)

    class FlaxNet(nn.Module):
        @nn.compact
        def __call__(self, x):
            return nn.Dense(2, name="linear")(x)

    t = hk.transform(lambda x: Net()(x))
    params = t.init(KEY, jnp.ones((1, 3)))
    assert list(params) == ["net/linear"]
    out = map_params(params, None, _template(FlaxNet(), jnp.ones((1, 3))), root_is_module=True)
    assert set(out["params"]) == {"linear"}


def test_auto_named_flax_modules_map_by_creation_order_and_shape():
    def f(x):
        x = hk.Linear(4)(x)
        x = hk.LayerNorm(-1, True, True)(x)
        return hk.Linear(3)(jax.nn.relu(x))

    class Auto(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = nn.Dense(4)(x)
            x = nn.LayerNorm(epsilon=1e-5, use_fast_variance=False)(x)
            return nn.Dense(3)(jax.nn.relu(x))

    x = jax.random.normal(KEY, (2, 5))
    hk_out, fx_out = _roundtrip(f, Auto(), x)
    np.testing.assert_array_equal(hk_out, fx_out)
    plan = build_plan(hk.transform(f).init(KEY, x), None, _template(Auto(), x), root_is_module=False)
    assert {t.by for t in plan.transfers} == {"order"}
    assert {t.flax_path[0] for t in plan.transfers if str(t.sources[0]) == "linear_1/w"} == {"Dense_1"}


def test_mha_heads_are_split_and_linear_becomes_out():
    def f(x):
        mha = hk.MultiHeadAttention(2, 4, model_size=6, w_init=hk.initializers.VarianceScaling(1.0))
        return mha(x, x, x)

    class Attn(nn.Module):
        @nn.compact
        def __call__(self, x):
            return nn.MultiHeadDotProductAttention(2, qkv_features=8, out_features=6, name="multi_head_attention")(
                x, x, x
            )

    hk_out, fx_out = _roundtrip(f, Attn(), jax.random.normal(KEY, (2, 5, 6)))
    np.testing.assert_allclose(hk_out, fx_out, rtol=1e-6, atol=1e-6)


def test_lstm_gates_are_split_and_forget_bias_folded():
    def f(xs):
        core = hk.LSTM(3)
        outs, _ = hk.dynamic_unroll(core, xs, core.initial_state(xs.shape[1]))
        return outs

    class Rnn(nn.Module):
        @nn.compact
        def __call__(self, xs):
            return nn.RNN(nn.OptimizedLSTMCell(3), time_major=True, name="lstm")(xs)

    xs = jax.random.normal(KEY, (4, 2, 5))
    t = hk.without_apply_rng(hk.transform(f))
    params = t.init(KEY, xs)
    params = jax.tree.map(lambda a: a + 0.1, params)  # a nonzero forget bias, so the +1 cannot hide
    plan = build_plan(params, None, _template(Rnn(), xs), root_is_module=False)
    assert plan.complete, plan.error_message()
    assert [t.offset for t in plan.transfers if t.flax_path[-2:] == ("hf", "bias")] == [1.0]
    np.testing.assert_allclose(t.apply(params, xs), Rnn().apply(plan.apply(params, None), xs), rtol=1e-6, atol=1e-6)


def test_conv_transpose_kernel_is_swapped_even_when_square():
    def f(x):
        return hk.Conv2DTranspose(4, 3, stride=2)(x)

    class Up(nn.Module):
        @nn.compact
        def __call__(self, x):
            return nn.ConvTranspose(4, (3, 3), strides=(2, 2), name="conv2_d_transpose")(x)

    x = jax.random.normal(KEY, (1, 4, 4, 4))
    hk_out, fx_out = _roundtrip(f, Up(), x)
    np.testing.assert_allclose(hk_out, fx_out, rtol=1e-6, atol=1e-6)


def test_batchnorm_average_maps_to_batch_stats_and_bookkeeping_is_reported():
    def f(x, is_training):
        return hk.BatchNorm(True, True, 0.9)(x, is_training)

    class Bn(nn.Module):
        @nn.compact
        def __call__(self, x, is_training):
            return nn.BatchNorm(momentum=0.9, name="batch_norm")(x, use_running_average=not is_training)

    x = jax.random.normal(KEY, (6, 3)) * 2 + 1
    t = hk.transform_with_state(f)
    params, state = t.init(KEY, x, True)
    plan = build_plan(params, state, _template(Bn(), x, False), root_is_module=False)
    assert plan.complete
    assert sorted(str(d.source).rsplit("/", 1)[-1] for d in plan.dropped) == ["counter", "counter", "hidden", "hidden"]
    variables = plan.apply(params, state)
    np.testing.assert_array_equal(
        variables["batch_stats"]["batch_norm"]["mean"], state["batch_norm/~/mean_ema"]["average"].reshape(-1)
    )
    hk_out, _ = t.apply(params, state, None, x, False)
    np.testing.assert_allclose(hk_out, Bn().apply(variables, x, False), rtol=1e-6, atol=1e-6)


def test_shape_mismatch_names_both_paths_and_shapes():
    params = {"linear": {"w": np.zeros((4, 3), np.float32), "b": np.zeros((3,), np.float32)}}
    template = {
        "params": {
            "linear": {
                "kernel": jax.ShapeDtypeStruct((3, 4), jnp.float32),
                "bias": jax.ShapeDtypeStruct((3,), jnp.float32),
            }
        }
    }
    with pytest.raises(ParamMappingError) as err:
        map_params(params, None, template, root_is_module=False)
    message = str(err.value)
    assert "linear/w (4, 3)" in message and "params/linear/kernel (3, 4)" in message


def test_unmapped_and_leftover_leaves_are_all_named():
    params = {"encoder": {"w": np.zeros((4, 3), np.float32)}, "extra": {"gain": np.zeros((2,), np.float32)}}
    template = {
        "params": {
            "encoder": {
                "kernel": jax.ShapeDtypeStruct((4, 3), jnp.float32),
                "bias": jax.ShapeDtypeStruct((3,), jnp.float32),
            }
        }
    }
    with pytest.raises(ParamMappingError) as err:
        map_params(params, None, template, root_is_module=False)
    message = str(err.value)
    assert "unmapped Haiku leaf: extra/gain f32[2]" in message
    assert "left-over Flax leaf: params/encoder/bias f32[3]" in message


def test_ambiguous_structural_pairs_are_not_guessed():
    # Two same-shaped Haiku layers and two Flax classes that both fit: without
    # creation order, pairing them would be a guess, so both stay unmapped.
    leaf = np.zeros((2, 2), np.float32)
    params = {"a": {"w": leaf}, "b": {"w": leaf}}
    shape = jax.ShapeDtypeStruct((2, 2), jnp.float32)
    template = {"params": {"Dense_0": {"kernel": shape}, "MyDense_0": {"kernel": shape}}}
    plan = build_plan(params, None, template, root_is_module=False)
    assert not plan.complete
    assert len(plan.unmapped) == 2 and len(plan.leftover) == 2


def test_structural_order_survives_string_sorted_trees():
    def f(x):
        for _ in range(12):
            x = hk.Linear(3)(x)
        return x

    class Auto(nn.Module):
        @nn.compact
        def __call__(self, x):
            for _ in range(12):
                x = nn.Dense(3)(x)
            return x

    x = jax.random.normal(KEY, (2, 3))
    t = hk.without_apply_rng(hk.transform(f))
    params = jax.tree.map(lambda a: a, t.init(KEY, x))  # tree.map returns keys sorted as strings
    assert list(params)[:3] == ["linear", "linear_1", "linear_10"]
    variables = map_params(params, None, _template(Auto(), x), root_is_module=False)
    np.testing.assert_array_equal(variables["params"]["Dense_10"]["kernel"], params["linear_10"]["w"])
    np.testing.assert_array_equal(variables["params"]["Dense_2"]["kernel"], params["linear_2"]["w"])


def test_haiku_gru_against_flax_gru_cell_is_refused_with_the_reason():
    def f(xs):
        core = hk.GRU(3)
        outs, _ = hk.dynamic_unroll(core, xs, core.initial_state(xs.shape[1]))
        return outs

    class Rnn(nn.Module):
        @nn.compact
        def __call__(self, xs):
            cell = nn.GRUCell(3, name="gru")
            carry = jnp.zeros((xs.shape[1], 3))
            outs = []
            for x in xs:
                carry, y = cell(carry, x)
                outs.append(y)
            return jnp.stack(outs)

    xs = jnp.ones((4, 2, 5))
    params = hk.transform(f).init(KEY, xs)
    template = _template(Rnn(), xs)
    with pytest.raises(ParamMappingError, match="reset gate"):
        map_params(params, None, template, root_is_module=False)


def test_names_beat_creation_order_when_both_readings_map_everything():
    # Every layer is 6x6, so the creation-order reading (Haiku root kept, no
    # names match) maps all leaves too; it would pair Haiku's `decoder` (sorted
    # first) with Flax's `encoder` (created first). The dropped-root
    # reading places every leaf by name and must win the tie.
    class AE(hk.Module):
        def __init__(self, name=None):
            super().__init__(name=name)
            self.encoder = hk.Linear(6, name="encoder")  # built in __init__: Haiku names it ae/~/encoder
            self.decoder = hk.Linear(6, name="decoder")

        def __call__(self, x):
            return self.decoder(jnp.tanh(self.encoder(x)))

    class FlaxAE(nn.Module):
        def setup(self):
            self.encoder = nn.Dense(6)
            self.decoder = nn.Dense(6)

        def __call__(self, x):
            return self.decoder(jnp.tanh(self.encoder(x)))

    x = jax.random.normal(KEY, (3, 6))
    t = hk.without_apply_rng(hk.transform(lambda x: AE(name="ae")(x)))
    # A tree that went through jax.tree.map (a checkpoint, hk.multi_transform) is key-sorted: decoder first.
    params = jax.tree.map(lambda a: a, t.init(KEY, x))
    assert list(params) == ["ae/~/decoder", "ae/~/encoder"]
    template = _template(FlaxAE(), x)
    order = module_table(FlaxAE(), KEY, x)  # creation order makes the structural reading unambiguous
    plan = build_plan(params, None, template, root_is_module=False, flax_modules=order)
    pairs = {str(tr.sources[0]): (tr.flax_path, tr.by) for tr in plan.transfers}
    assert pairs["ae/~/encoder/w"] == (("encoder", "kernel"), "name")
    assert pairs["ae/~/decoder/w"] == (("decoder", "kernel"), "name")
    variables = map_params(params, None, template, root_is_module=False)
    hk_out = jax.jit(t.apply)(params, x)
    fx_out = jax.jit(FlaxAE().apply)(variables, x)
    np.testing.assert_array_equal(np.asarray(hk_out), np.asarray(fx_out))
