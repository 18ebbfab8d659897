"""``hk.BatchNorm`` and ``hk.DepthwiseConv*D`` migrate to exact helpers, training dynamics included.

Each Haiku program below is migrated by the real engine, imported, and run
side by side with the original: Haiku's ``init`` state must equal the Flax
``init`` variables (the debiased EMAs record the init batch), and after every
one of several training steps the outputs and *all* of Haiku's state (``counter``,
``hidden``, ``average`` of ``mean_ema`` / ``var_ema``) must equal the Flax
``batch_stats``, bit for bit on CPU, mapped by :func:`flaxify.equivalence.map_params`
(the same mapping ``flaxify check`` and ``convert-params`` use). Then evaluation.
"""

from __future__ import annotations

import importlib.util
import re
import sys
import textwrap
from pathlib import Path
from types import ModuleType
from typing import Any

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flaxify.equivalence import map_params
from flaxify.migrate import migrate_source

SOURCE = textwrap.dedent(
    '''\
    import haiku as hk
    import jax
    import jax.numpy as jnp


    def default(x, is_training):
        return hk.BatchNorm(True, True, 0.9)(x, is_training)


    def channels_first(x, is_training):
        bn = hk.BatchNorm(True, False, 0.99, eps=1e-3, scale_init=hk.initializers.Constant(2.0), data_format="NCHW", name="bn")
        return bn(x, is_training=is_training)


    def reduced_axes(x, is_training):
        bn = hk.BatchNorm(create_scale=False, create_offset=True, decay_rate=0.5, axis=[0, 1], offset_init=hk.initializers.RandomNormal())
        return bn(x, is_training)


    def call_time_affine(x, is_training):
        bn = hk.BatchNorm(False, False, 0.9, data_format="N...C")
        return bn(x, is_training, test_local_stats=not is_training, scale=jnp.full([x.shape[-1]], 2.0), offset=0.5)


    class Block(hk.Module):
        def __init__(self, bn_config, name=None):
            super().__init__(name=name)
            self.bn = hk.BatchNorm(name="bn", **bn_config)

        def __call__(self, x, is_training):
            return self.bn(x, is_training)


    def run_time_config(x, is_training):
        return Block({"create_scale": True, "create_offset": True, "decay_rate": 0.9, "eps": 1e-4})(x, is_training)


    def cross_replica(x, is_training):
        return hk.BatchNorm(True, True, 0.9, cross_replica_axis="i")(x, is_training)


    def depthwise(x, is_training):
        conv = hk.DepthwiseConv2D(2, 3, stride=2, data_format="NCHW", w_init=hk.initializers.RandomNormal(0.3), b_init=hk.initializers.Constant(0.1))
        return hk.BatchNorm(True, True, 0.9, data_format="channels_first")(conv(x), is_training)


    def sequential(x, is_training):
        features = hk.Sequential([hk.DepthwiseConv2D(1, 3, w_init=hk.initializers.RandomUniform()), jax.nn.relu])
        return hk.BatchNorm(True, True, 0.9)(features(x), is_training)


    default_net = hk.transform_with_state(default)
    channels_first_net = hk.transform_with_state(channels_first)
    reduced_axes_net = hk.transform_with_state(reduced_axes)
    call_time_affine_net = hk.transform_with_state(call_time_affine)
    run_time_config_net = hk.transform_with_state(run_time_config)
    cross_replica_net = hk.transform_with_state(cross_replica)
    depthwise_net = hk.transform_with_state(depthwise)
    sequential_net = hk.transform_with_state(sequential)
    '''
)

#: net name -> input shape (a leading replica axis for cross_replica).
CASES = {
    "default_net": (4, 5, 5, 3),
    "channels_first_net": (4, 3, 5, 5),
    "reduced_axes_net": (4, 6, 3),
    "call_time_affine_net": (4, 5, 3),
    "run_time_config_net": (6, 3),
    "cross_replica_net": (2, 4, 3),
    "depthwise_net": (3, 2, 7, 7),
    "sequential_net": (2, 5, 5, 3),
}
STEPS = 3


def _load(path: Path, label: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"_flaxify_bn_{label}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def modules(tmp_path_factory: pytest.TempPathFactory) -> tuple[ModuleType, ModuleType, str]:
    """The Haiku source and its migration, imported."""
    root = tmp_path_factory.mktemp("bn")
    (root / "haiku_bn.py").write_text(SOURCE)
    migrated = migrate_source(SOURCE.encode(), str(root / "haiku_bn.py"))
    assert migrated.todos == (), migrated.todos
    (root / "flax_bn.py").write_bytes(migrated.source)
    return _load(root / "haiku_bn.py", "hk"), _load(root / "flax_bn.py", "fx"), migrated.source.decode()


def _batches(shape: tuple[int, ...], dtype: Any) -> list[jax.Array]:
    """Batches with different statistics, so every step moves the EMAs."""
    return [(jax.random.normal(jax.random.PRNGKey(i), shape) * (i + 1) + 0.5 * i).astype(dtype) for i in range(STEPS + 1)]


def _calls(name: str, hk_net: Any, fx_net: Any) -> tuple[Any, Any, Any, Any]:
    """Jitted Haiku and Flax init/apply with the training flag static (vmapped over replicas for cross_replica)."""
    hk_init = lambda x: hk_net.init(jax.random.PRNGKey(0), x, True)
    fx_init = lambda x: fx_net.init(jax.random.PRNGKey(0), x, True)
    hk_apply = lambda p, s, x, t: hk_net.apply(p, s, None, x, t)
    fx_apply = lambda v, x, t: fx_net.apply(v, x, t, mutable=["batch_stats"])
    if name == "cross_replica_net":  # state and params replicated, the batch statistics averaged over "i"
        hk_init = jax.vmap(hk_init, axis_name="i")
        fx_init = jax.vmap(fx_init, axis_name="i")
        hk_apply = jax.vmap(hk_apply, in_axes=(0, 0, 0, None), axis_name="i")
        fx_apply = jax.vmap(fx_apply, in_axes=(0, 0, None), axis_name="i")
    return jax.jit(hk_init), jax.jit(fx_init), jax.jit(hk_apply, static_argnums=3), jax.jit(fx_apply, static_argnums=2)


def _mapped(params: Any, state: Any, template: Any, name: str) -> dict[str, Any]:
    """Haiku variables on the Flax tree, through the checker's own mapping (one replica at a time)."""
    if name != "cross_replica_net":
        return map_params(params, state, template, root_is_module=False)

    def replica(tree: Any, r: int) -> Any:
        return jax.tree.map(lambda a: a[r], tree)

    mapped = [map_params(replica(params, r), replica(state, r), replica(template, 0), root_is_module=False) for r in range(2)]
    return jax.tree.map(lambda *leaves: np.stack(leaves), *mapped)


def _assert_same(expected: Any, got: Any, what: str) -> None:
    assert jax.tree.structure(expected) == jax.tree.structure(got), what
    for (path, e), g in zip(jax.tree_util.tree_flatten_with_path(expected)[0], jax.tree.leaves(got), strict=True):
        assert np.asarray(e).dtype == np.asarray(g).dtype, (what, path)
        np.testing.assert_array_equal(np.asarray(g), np.asarray(e), err_msg=f"{what} {jax.tree_util.keystr(path)}")


# Every case in float32; two layouts again in bfloat16 (Haiku keeps params and state in the input dtype).
RUNS = [pytest.param(n, jnp.float32, id=n) for n in CASES]
RUNS += [pytest.param(n, jnp.bfloat16, id=f"{n}-bf16") for n in ("default_net", "channels_first_net")]


@pytest.mark.parametrize(("name", "dtype"), RUNS)
def test_training_steps_and_evaluation_are_bit_exact(name: str, dtype: Any, modules: tuple[ModuleType, ModuleType, str]) -> None:
    haiku_mod, flax_mod, _ = modules
    hk_init, fx_init, hk_apply, fx_apply = _calls(name, getattr(haiku_mod, name), getattr(flax_mod, name))
    xs = _batches(CASES[name], dtype)
    params, state = hk_init(xs[0])
    variables = fx_init(xs[0])
    # Flax's own init must record the init batch exactly as Haiku's does (the depthwise case
    # feeds BatchNorm through random weights, which the two libraries draw differently).
    if name not in ("depthwise_net", "sequential_net"):
        _assert_same(_mapped(params, state, variables, name)["batch_stats"], variables["batch_stats"], "init state")
    variables = _mapped(params, state, variables, name)  # Haiku's params (random offset_init) on the Flax side
    for step, x in enumerate(xs[1:], start=1):
        hk_out, state = hk_apply(params, state, x, True)
        fx_out, updates = fx_apply(variables, x, True)
        variables = {**variables, **updates}
        _assert_same(hk_out, fx_out, f"training output, step {step}")
        _assert_same(_mapped(params, state, variables, name)["batch_stats"], variables["batch_stats"], f"state, step {step}")
    assert int(np.max(np.asarray(state[next(k for k in state if k.endswith("mean_ema"))]["counter"]))) == STEPS
    hk_out, _ = hk_apply(params, state, xs[0], False)
    fx_out, _ = fx_apply(variables, xs[0], False)
    _assert_same(hk_out, fx_out, "evaluation output")


def test_migrated_source_keeps_haikus_call_and_names(modules: tuple[ModuleType, ModuleType, str]) -> None:
    _, _, source = modules
    assert 'self.bn = BatchNorm(**self.bn_config, name="bn")' in source
    assert "bn(x, is_training, test_local_stats=not is_training, scale=" in source
    assert source.count("class BatchNorm(nn.Module):") == 1
    assert source.count("class ExponentialMovingAverage(nn.Module):") == 1
    assert source.count("def get_channel_index(") == 1
    assert 'DepthwiseConv2D(2, 3, stride=2, data_format="NCHW", w_init=nn.initializers.normal(0.3), b_init=nn.initializers.constant(0.1), name="depthwise_conv2_d")' in source
    assert "nn.Sequential([DepthwiseConv2D(1, 3, w_init=nn.initializers.uniform(1.0), name=" in source
    assert "nn.BatchNorm" not in source and "use_running_average" not in source


def test_haiku_mobilenet_migrates_without_todos() -> None:
    """``hk.nets.MobileNetV1``'s BatchNorms and depthwise convs need no TODO (its check: test_realworld_haiku_nets)."""
    path = Path(hk.__file__).resolve().parent / "_src" / "nets" / "mobilenetv1.py"
    # The fork edit the file prescribes: its `class hk:` shim over private modules -> `import haiku as hk`.
    forked = re.sub(r"# If you are forking.*?\ndel [^\n]*\n", "import haiku as hk\n", path.read_text(), flags=re.DOTALL)
    forked = re.sub(r"^from haiku\._src import \w+\n", "", forked, flags=re.MULTILINE)
    result = migrate_source(forked.encode(), str(path))
    assert result.todos == (), result.todos
    assert "BatchNorm(create_scale=True, create_offset=True, decay_rate=0.999" in result.source.decode()


FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "migrate" / "state" / "batchnorm_convnet"


def test_trained_checkpoint_converts_leaf_for_leaf_and_keeps_training_exactly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``convert-params``: Haiku's trained params and EMAs land in the migrated model and keep its dynamics."""
    from flax import serialization

    from flaxify.cli import main
    from flaxify.equivalence.convert import save_npz
    from flaxify.equivalence.refs import resolve_ref

    haiku_ref, flax_ref = f"{FIXTURE}.before.py:net", f"{FIXTURE}.after.py:net"
    hk_net, fx_net = resolve_ref(haiku_ref), resolve_ref(flax_ref)
    xs = _batches((2, 8, 8, 3), jnp.float32)
    params, state = hk_net.init(jax.random.PRNGKey(7), xs[0], is_training=True)
    for x in xs[1:]:  # a trained checkpoint: counters > 0, EMAs away from the init batch
        _, state = hk_net.apply(params, state, None, x, is_training=True)
    save_npz(tmp_path / "ckpt.npz", jax.device_get(params), jax.device_get(state))
    out = tmp_path / "flax.msgpack"
    args = ["--input", "f32[2,8,8,3]", "--kwargs", '{"is_training": false}']
    assert main(["convert-params", haiku_ref, flax_ref, str(tmp_path / "ckpt.npz"), "-o", str(out), *args]) == 0, capsys.readouterr().err
    variables = serialization.msgpack_restore(out.read_bytes())
    for module, leaves in state.items():  # "conv_block/~/batch_norm/~/mean_ema" -> batch_stats/conv_block/batch_norm/mean_ema
        node = variables["batch_stats"]
        for part in module.replace("/~/", "/").split("/"):
            node = node[part]
        _assert_same(dict(leaves), node, module)
    hk_out, hk_state = hk_net.apply(params, state, None, xs[0], is_training=True)
    fx_out, updates = fx_net.apply(variables, xs[0], is_training=True, mutable=["batch_stats"])
    _assert_same(hk_out, fx_out, "training output after conversion")
    _assert_same(map_params(params, hk_state, variables, root_is_module=False)["batch_stats"], updates["batch_stats"], "state")
    _assert_same(hk_net.apply(params, state, None, xs[0], is_training=False)[0], fx_net.apply(variables, xs[0], is_training=False), "eval")
