"""Haiku layer constructors -> Flax source: the table of rewrites, read as a spec."""

from __future__ import annotations

import libcst as cst
import pytest

from flaxify.migrate.layers import helper_class, rewrite_layer, rewrite_layer_call
from flaxify.migrate.layers_combinators import MLP_CLASS_IMPORTS, mlp_class_source
from flaxify.migrate.layers_common import code, spelled_qualname
from flaxify.migrate.rewrite import ImportSpec, Rewrite, Unsupported

TN = 'nn.initializers.variance_scaling(0.87962566103423978**2, "fan_in", "truncated_normal")'

# (haiku constructor, flax expression); every case gets name="layer" from the engine.
SOURCE = [
    # Linear
    ("hk.Linear(10)", f'nn.Dense(10, kernel_init={TN}, name="layer")'),
    (
        "hk.Linear(10, with_bias=False, w_init=hk.initializers.Constant(1.0), name='out')",
        "nn.Dense(10, use_bias=False, kernel_init=nn.initializers.constant(1.0), name='out')",
    ),
    (
        "hk.Linear(3, b_init=hk.initializers.RandomNormal(0.1))",
        f'nn.Dense(3, kernel_init={TN}, bias_init=nn.initializers.normal(0.1), name="layer")',
    ),
    ("hk.Linear(3, w_init=None, name=None)", f'nn.Dense(3, kernel_init={TN}, name="layer")'),
    # Conv
    ("hk.Conv2D(16, 3)", f'nn.Conv(16, (3, 3), kernel_init={TN}, name="layer")'),
    ("hk.Conv3D(4, [2])", f'nn.Conv(4, (2, 2, 2), kernel_init={TN}, name="layer")'),
    (
        "hk.Conv1D(8, 5, rate=2, padding=hk.pad.causal)",
        f'nn.Conv(8, (5,), padding=((8, 0),), kernel_dilation=2, kernel_init={TN}, name="layer")',
    ),
    (
        "hk.Conv2D(8, (3, 1), stride=2, padding='valid', with_bias=False, feature_group_count=2)",
        f'nn.Conv(8, (3, 1), strides=2, padding="VALID", feature_group_count=2, use_bias=False, kernel_init={TN}, name="layer")',
    ),
    (
        "hk.Conv2D(8, k, stride=[2], padding=[(1, 1)], mask=m)",
        f'nn.Conv(8, (k, k) if isinstance(k, int) else tuple(k), strides=(2, 2), padding=((1, 1), (1, 1)), mask=m, kernel_init={TN}, name="layer")',
    ),
    (
        "hk.Conv2D(8, 3, padding=(hk.pad.same, hk.pad.full), rate=(1, 2))",
        f'nn.Conv(8, (3, 3), padding=((1, 1), (4, 4)), kernel_dilation=(1, 2), kernel_init={TN}, name="layer")',
    ),
    ("hk.ConvND(1, 4, k, data_format='NWC')", f'nn.Conv(4, k, kernel_init={TN}, name="layer")'),
    # ConvTranspose
    ("hk.Conv2DTranspose(4, 3, stride=2)", f'nn.ConvTranspose(4, (3, 3), strides=2, kernel_init={TN}, name="layer")'),
    (
        "hk.Conv1DTranspose(4, 3, mask=m, w_init=hk.initializers.Constant(0.1))",
        'nn.ConvTranspose(4, (3,), mask=jnp.swapaxes(m, -1, -2), kernel_init=nn.initializers.constant(0.1), name="layer")',
    ),
    (
        "hk.Conv2DTranspose(4, 3, w_init=hk.initializers.VarianceScaling(2.0))",
        "nn.ConvTranspose(4, (3, 3), kernel_init=lambda key, shape, dtype=jnp.float32: jnp.swapaxes("
        '(nn.initializers.variance_scaling(2.0, "fan_in", "truncated_normal"))(key, (*shape[:-2], shape[-1], '
        'shape[-2]), dtype), -1, -2), name="layer")',
    ),
    # Norms
    ("hk.LayerNorm(-1, True, True)", 'nn.LayerNorm(epsilon=1e-05, use_fast_variance=False, name="layer")'),
    (
        "hk.LayerNorm(axis=(1, 2), create_scale=False, create_offset=True, eps=1e-3, param_axis=[1, 2])",
        "nn.LayerNorm(epsilon=1e-3, use_scale=False, reduction_axes=(1, 2), feature_axes=(1, 2), "
        'use_fast_variance=False, name="layer")',
    ),
    (
        "hk.LayerNorm(slice(-2, None), True, False, scale_init=hk.initializers.Constant(2.0))",
        "nn.LayerNorm(epsilon=1e-05, use_bias=False, scale_init=nn.initializers.constant(2.0), "
        'reduction_axes=(-2, -1), use_fast_variance=False, name="layer")',
    ),
    ("hk.InstanceNorm(True, False)", 'nn.InstanceNorm(epsilon=1e-05, use_bias=False, use_fast_variance=False, name="layer")'),
    ("hk.GroupNorm(8)", 'nn.GroupNorm(num_groups=8, epsilon=1e-05, use_fast_variance=False, name="layer")'),
    (
        "hk.GroupNorm(groups=4, axis=slice(1, None), eps=1e-6, data_format='channels_last')",
        'nn.GroupNorm(num_groups=4, epsilon=1e-6, use_fast_variance=False, name="layer")',
    ),
    ("hk.RMSNorm(-1)", 'nn.RMSNorm(epsilon=1e-05, name="layer")'),
    ("hk.RMSNorm((-2, -1), 1e-6, create_scale=False)", 'nn.RMSNorm(epsilon=1e-6, use_scale=False, reduction_axes=(-2, -1), name="layer")'),
    # Embed
    ("hk.Embed(100, 16)", 'nn.Embed(100, 16, embedding_init=nn.initializers.truncated_normal(1.0), name="layer")'),
    (
        "hk.Embed(embedding_matrix=table)",
        'nn.Embed(table.shape[0], table.shape[1], embedding_init=lambda *_: jnp.asarray(table), name="layer")',
    ),
    (
        "hk.Embed(10, 4, w_init=hk.initializers.RandomNormal(0.02), lookup_style='ARRAY_INDEX')",
        'nn.Embed(10, 4, embedding_init=nn.initializers.normal(0.02), name="layer")',
    ),
    # Shape layers (no parameters, no name)
    ("hk.Flatten()", "lambda x: x if x.ndim <= 1 else jnp.reshape(x, x.shape[:1] + (-1,))"),
    ("hk.Flatten(preserve_dims=-2, name='flat')", "lambda x: jnp.reshape(x, x.shape[:-2] + (-1,))"),
    ("hk.Reshape([4, -1])", "lambda x: x if x.ndim <= 1 else jnp.reshape(x, x.shape[:1] + (4, -1))"),
    ("hk.Reshape(shape, preserve_dims=2)", "lambda x: x if x.ndim <= 2 else jnp.reshape(x, x.shape[:2] + tuple(shape))"),
    ("hk.Reshape((x, -1))", "lambda x_: x_ if x_.ndim <= 1 else jnp.reshape(x_, x_.shape[:1] + (x, -1))"),
    # Combinators
    (
        "hk.Sequential([hk.Linear(3), jax.nn.relu, hk.Linear(1)])",
        'nn.Sequential([hk.Linear(3), jax.nn.relu, hk.Linear(1)], name="layer")',
    ),
    (
        "hk.Sequential([nn.Dense(3), lambda x: jnp.reshape(x, (-1,)), nn.Dense(1)])",
        'nn.Sequential([nn.Dense(3), lambda x: jnp.reshape(x, (-1,)), nn.Dense(1)], name="layer")',
    ),
    (
        "hk.Sequential([MLP(output_sizes=[3]), Bias(), nn.Dense(1)])",
        'nn.Sequential([MLP(output_sizes=[3]), Bias(), nn.Dense(1)], name="layer")',
    ),
    ("hk.nets.MLP([64, 10])", 'MLP(output_sizes=[64, 10], name="layer")'),
    # Depthwise convs whose input is unknown here, and BatchNorm: exact helpers taking Haiku's arguments
    ("hk.DepthwiseConv2D(2, 3)", 'DepthwiseConv2D(2, 3, name="layer")'),
    (
        "hk.DepthwiseConv1D(1, 3, data_format='NCW', b_init=hk.initializers.Constant(0.5))",
        "DepthwiseConv1D(1, 3, data_format='NCW', b_init=nn.initializers.constant(0.5), name=\"layer\")",
    ),
    ("hk.BatchNorm(True, False, 0.9, eps=1e-3)", 'BatchNorm(True, False, 0.9, eps=1e-3, name="layer")'),
    (
        "hk.BatchNorm(name='bn', scale_init=hk.initializers.Constant(2.0), **bn_config)",
        "BatchNorm(name='bn', scale_init=nn.initializers.constant(2.0), **bn_config)",
    ),
    (
        "hk.nets.MLP(sizes, w_init=hk.initializers.VarianceScaling(2.0), with_bias=False, "
        "activation=jax.nn.gelu, activate_final=True)",
        'MLP(output_sizes=sizes, kernel_init=nn.initializers.variance_scaling(2.0, "fan_in", "truncated_normal"), '
        'use_bias=False, activation=jax.nn.gelu, activate_final=True, name="layer")',
    ),
    # Bias (a helper Linen module, see helper_class)
    ("hk.Bias()", 'Bias(name="layer")'),
    (
        "hk.Bias(bias_dims=[-1], b_init=hk.initializers.Constant(0.5), name='b0')",
        "Bias(bias_dims=[-1], bias_init=nn.initializers.constant(0.5), name='b0')",
    ),
    # Pool modules
    ("hk.MaxPool((1, 2, 2, 1), (1, 2, 2, 1), 'VALID')", 'lambda x: nn.max_pool(x, (2, 2), strides=(2, 2), padding="VALID")'),
]

UNSUPPORTED = [
    ("hk.Conv2D(4, 3, data_format='NCHW')", "channels-last only"),
    ("hk.Conv2D(4, make_kernel())", "not a literal"),
    ("hk.ConvND(n, 4, 3)", "num_spatial_dims must be a literal"),
    ("hk.Conv2D(4, (3, 3, 3))", "length 1 or 2"),
    ("hk.Conv2D(4, 3, padding='CIRCULAR')", "not a lax padding mode"),
    ("hk.Conv2D(4, 3, w_init=my_init)", "w_init: `my_init` is not a known Haiku initializer"),
    ("hk.Conv2D(4, 3, padding=hk.pad.same)".replace("3,", "k,"), "literal kernel_shape"),
    ("hk.Conv2DTranspose(4, 3, output_shape=(8, 8))", "output_shape"),
    ("hk.DepthwiseConv2D(*args)", "pass its arguments by position or name"),
    ("hk.BatchNorm(True, True)", "needs decay_rate"),
    ("hk.BatchNorm(True, True, 0.9, scale_init=my_init)", "scale_init: `my_init` is not a known Haiku initializer"),
    ("hk.LayerNorm(slice(1, None), True, True)", "depends on the input rank"),
    ("hk.LayerNorm(-1, True, True, use_fast_variance=True)", "clips a negative"),
    ("hk.LayerNorm(-1, True)", "needs axis, create_scale and create_offset"),
    ("hk.GroupNorm(4, axis=(1, 2))", "only the default axis"),
    ("hk.GroupNorm(4, data_format='channels_first')", "channels-last only"),
    ("hk.InstanceNorm(True, True, data_format='NCHW')", "channels-last only"),
    ("hk.Embed(10, 4, lookup_style='ONE_HOT')", "ONE_HOT"),
    ("hk.Embed(embedding_matrix=load())", "pass vocab_size and embed_dim"),
    ("hk.Flatten(preserve_dims=n)", "non-zero literal int"),
    ("hk.Sequential([hk.Linear(3), my_block, hk.Linear(1)])", "layer 1 (`my_block`) may return a tuple"),
    ("hk.Sequential([])", "identity in Haiku"),
    ("hk.Sequential(layers)", "literal list"),
    ("hk.Linear(*args)", "*args"),
    ("hk.Linear(3, bias=True)", "no argument 'bias'"),
    ("hk.nets.VectorQuantizer(4, 2, 0.25)", "no table-driven Flax rewrite"),
]


def _rewrite(src: str, name: str | None = "layer") -> Rewrite | Unsupported:
    call = cst.parse_expression(src)
    assert isinstance(call, cst.Call)
    return rewrite_layer(call, spelled_qualname(call.func) or "", name=name)


@pytest.mark.parametrize(("haiku_src", "flax_src"), SOURCE)
def test_source(haiku_src: str, flax_src: str) -> None:
    result = _rewrite(haiku_src)
    assert isinstance(result, Rewrite), result
    assert code(result.expr) == flax_src


@pytest.mark.parametrize(("haiku_src", "reason"), UNSUPPORTED)
def test_unsupported(haiku_src: str, reason: str) -> None:
    result = _rewrite(haiku_src)
    assert isinstance(result, Unsupported)
    assert reason in result.reason


def test_no_name_is_added_when_the_engine_gives_none() -> None:
    result = _rewrite("hk.Linear(2)", name=None)
    assert isinstance(result, Rewrite) and "name=" not in code(result.expr)


def test_haiku_src_qualnames_and_local_names() -> None:
    call = cst.parse_expression("Linear(2)")
    result = rewrite_layer(call, "haiku._src.basic.Linear", name="fc", nn="linen", jnp="jn")
    assert isinstance(result, Rewrite)
    expected = 'linen.Dense(2, kernel_init=linen.initializers.variance_scaling(0.87962566103423978**2, "fan_in", "truncated_normal"), name="fc")'
    assert code(result.expr) == expected


def test_initializers_the_engine_already_rewrote_are_kept() -> None:
    result = _rewrite("hk.Linear(2, w_init=nn.initializers.constant(1.0), b_init=jax.nn.initializers.ones)")
    assert isinstance(result, Rewrite)
    assert code(result.expr) == (
        'nn.Dense(2, kernel_init=nn.initializers.constant(1.0), bias_init=jax.nn.initializers.ones, name="layer")'
    )


@pytest.mark.parametrize(
    ("w_init", "wrapped"),
    [
        ("nn.initializers.normal(0.1)", False),
        ("nn.initializers.constant(0.5)", False),
        ("nn.initializers.constant(table)", True),
        ('nn.initializers.variance_scaling(2.0, "fan_in", "truncated_normal")', True),
    ],
)
def test_transposed_kernel_init_is_drawn_in_haikus_layout_when_shape_matters(w_init: str, wrapped: bool) -> None:
    result = _rewrite(f"hk.Conv1DTranspose(2, 3, w_init={w_init})")
    assert isinstance(result, Rewrite)
    assert ("jnp.swapaxes" in code(result.expr)) is wrapped


def test_initializer_imports_are_passed_on() -> None:
    result = _rewrite("hk.Linear(2, w_init=hk.initializers.RandomNormal(1.0, mean=0.5))")
    assert isinstance(result, Rewrite) and result.imports == (ImportSpec("jax", None, None),)


def test_resolver_is_used_for_initializers_and_pad_functions() -> None:
    names = {"TN": "haiku.initializers.TruncatedNormal", "causal": "haiku.pad.causal"}
    resolver = lambda node: names.get(code(node))  # noqa: E731
    call = cst.parse_expression("hk.Conv1D(2, 3, padding=causal, w_init=TN(0.5))")
    result = rewrite_layer(call, "haiku.Conv1D", name=None, resolver=resolver)
    assert isinstance(result, Rewrite)
    assert code(result.expr) == "nn.Conv(2, (3,), padding=((2, 0),), kernel_init=nn.initializers.truncated_normal(0.5))"


CALLS = [
    (
        "hk.Linear(3)(x, precision=jax.lax.Precision.HIGHEST)",
        f'nn.Dense(3, kernel_init={TN}, precision=jax.lax.Precision.HIGHEST, name="layer")(x)',
    ),
    (
        "hk.Conv2DTranspose(3, 2)(h, precision=P)",
        f'nn.ConvTranspose(3, (2, 2), kernel_init={TN}, precision=P, name="layer")(h)',
    ),
    (
        "hk.DepthwiseConv2D(2, 3, padding='VALID')(x)",
        f'nn.Conv(2 * x.shape[-1], (3, 3), padding="VALID", feature_group_count=x.shape[-1], kernel_init={TN}, name="layer")(x)',
    ),
    ("hk.DepthwiseConv2D(2, 3)(f(x))", 'DepthwiseConv2D(2, 3, name="layer")(f(x))'),
    ("hk.Flatten()(h)", "h if h.ndim <= 1 else jnp.reshape(h, h.shape[:1] + (-1,))"),
    ("hk.Flatten()(f(h))", "(lambda x: x if x.ndim <= 1 else jnp.reshape(x, x.shape[:1] + (-1,)))(f(h))"),
    ("hk.MaxPool(2, 2, 'SAME')(y)", 'nn.max_pool(y, (2,) * (y.ndim - 2), strides=(2,) * (y.ndim - 2), padding="SAME")'),
]


@pytest.mark.parametrize(("haiku_src", "flax_src"), CALLS)
def test_immediate_call(haiku_src: str, flax_src: str) -> None:
    outer = cst.parse_expression(haiku_src)
    assert isinstance(outer, cst.Call) and isinstance(outer.func, cst.Call)
    result = rewrite_layer_call(outer, spelled_qualname(outer.func.func) or "", name="layer")
    assert isinstance(result, Rewrite), result
    assert code(result.expr) == flax_src


@pytest.mark.parametrize(
    "haiku_src",
    ["hk.Linear(3)(x)", "hk.nets.MLP([3])(x, dropout_rate=0.1, rng=k)", "hk.Sequential([hk.Linear(2)])(x, 1)"],
)
def test_immediate_call_noop(haiku_src: str) -> None:
    outer = cst.parse_expression(haiku_src)
    assert rewrite_layer_call(outer, spelled_qualname(outer.func.func) or "", name=None) is None


@pytest.mark.parametrize(
    ("haiku_src", "reason"),
    [
        ("hk.LayerNorm(-1, False, False)(x, scale, offset)", "extra positional arguments"),
        ("hk.Embed(3, 2)(ids, lookup_style='ONE_HOT')", "lookup_style"),
    ],
)
def test_immediate_call_unsupported(haiku_src: str, reason: str) -> None:
    outer = cst.parse_expression(haiku_src)
    result = rewrite_layer_call(outer, spelled_qualname(outer.func.func) or "", name=None)
    assert isinstance(result, Unsupported) and reason in result.reason


@pytest.mark.parametrize(("qualname", "class_name"), [("haiku.nets.MLP", "MLP"), ("haiku._src.bias.Bias", "Bias")])
def test_helper_classes(qualname: str, class_name: str) -> None:
    found = helper_class(qualname, nn="linen", jnp="jnp_")
    assert found is not None
    name, source, imports = found
    klass = cst.parse_module(source).body[0]
    assert name == class_name and isinstance(klass, cst.ClassDef) and klass.name.value == class_name
    assert "(linen.Module)" in source and ImportSpec("collections.abc", "Sequence", None) in imports


def test_no_helper_class_for_flax_layers() -> None:
    assert helper_class("haiku.Linear") is None


def test_mlp_class_source_is_valid_python_with_its_imports() -> None:
    source = mlp_class_source("linen", class_name="HaikuMLP")
    module = cst.parse_module(source)
    assert isinstance(module.body[0], cst.ClassDef) and module.body[0].name.value == "HaikuMLP"
    assert "linen.Dense(" in source and 'name=f"linear_{i}"' in source
    assert {spec.module for spec in MLP_CLASS_IMPORTS} == {"jax", "collections.abc"}
