"""Emitted Flax layers compute bit-identical outputs to the Haiku originals (CPU, f32).

Each case builds the Haiku layer inside ``hk.transform``, gives it random
parameters, converts them by hand to the Flax tree (renames, squeezes, the
ConvTranspose kernel transpose), evaluates the *emitted* Flax expression, and
compares outputs with ``assert_array_equal``. Norm inputs are near-constant so a
wrong epsilon or variance formula cannot pass.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import haiku as hk
import jax
import jax.numpy as jnp
import libcst as cst
import numpy as np
import pytest
from flax import linen as nn

from flaxify.migrate.layers import LAYERS, helper_class, rewrite_layer, rewrite_layer_call
from flaxify.migrate.layers_common import code, haiku_name, spelled_qualname
from flaxify.migrate.pooling import rewrite_pool
from flaxify.migrate.rewrite import Rewrite, Unsupported

_POOLS = {"max_pool", "avg_pool", "MaxPool", "AvgPool"}


class _MiniEngine(cst.CSTTransformer):
    """Rewrites every Haiku layer/pool call in an expression, innermost first (test-only)."""

    def leave_Call(self, original_node: cst.Call, updated_node: cst.Call) -> cst.BaseExpression:
        if isinstance(original_node.func, cst.Call):
            qualname = spelled_qualname(original_node.func.func) or ""
            if haiku_name(qualname) in LAYERS or haiku_name(qualname) in _POOLS or "Depthwise" in qualname:
                result = rewrite_layer_call(original_node, qualname, name=None)
                if result is not None:
                    return _unwrap(result)
            return updated_node
        qualname = spelled_qualname(original_node.func) or ""
        tail = haiku_name(qualname)
        if tail in _POOLS:
            return _unwrap(rewrite_pool(updated_node, qualname))
        if tail in LAYERS:
            return _unwrap(rewrite_layer(updated_node, qualname, name=None))
        return updated_node


def _unwrap(result: Rewrite | Unsupported) -> cst.BaseExpression:
    assert isinstance(result, Rewrite), result
    return result.expr


def migrate(src: str) -> str:
    """The Flax source the rewrites produce for a Haiku expression."""
    return code(cst.parse_expression(src).visit(_MiniEngine()))


def _rename(module: str, leaf: str) -> str:
    if module.startswith("bias"):  # the emitted Bias module keeps Haiku's leaf name
        return leaf
    return {"w": "kernel", "b": "bias", "offset": "bias", "embeddings": "embedding"}.get(leaf, leaf)


def to_flax(hk_params: dict, path_map: dict[str, tuple[str, ...]], flax_shapes: dict, transpose: bool) -> dict:
    """Haiku ``{module: {leaf: array}}`` -> Flax params, shaped like ``flax_shapes``."""
    out: dict = {}
    for module, leaves in hk_params.items():
        for leaf, value in leaves.items():
            path = (*path_map[module], _rename(module, leaf))
            if transpose and leaf == "w":
                value = jnp.swapaxes(value, -1, -2)
            target = flax_shapes
            for p in path:
                target = target[p]
            node = out
            for p in path[:-1]:
                node = node.setdefault(p, {})
            node[path[-1]] = jnp.reshape(value, target.shape)
    return out


def _randomize(params: dict, seed: int = 7) -> dict:
    leaves, tree = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(jax.random.PRNGKey(seed), len(leaves))
    values = [jax.random.normal(k, p.shape, p.dtype) for k, p in zip(keys, leaves, strict=True)]
    return jax.tree_util.tree_unflatten(tree, values)


def _input(shape: tuple[int, ...], kind: str) -> jax.Array:
    key = jax.random.PRNGKey(3)
    if kind == "ids":
        return jax.random.randint(key, shape, 0, 11)
    if kind == "flat":  # near-constant rows: variance ~1e-6, so epsilon matters
        return 1.0 + 1e-3 * jax.random.normal(key, shape)
    if kind == "small":  # mean square ~1e-6, so RMSNorm's epsilon matters
        return 1e-3 * jax.random.normal(key, shape)
    return jax.random.normal(key, shape)


# (haiku source with `x` as the input, input shape, input kind, haiku module -> flax path)
CASES: list[tuple[str, tuple[int, ...], str, dict[str, tuple[str, ...]] | None]] = [
    ("hk.Linear(5)(x)", (2, 3), "normal", None),
    ("hk.Linear(4, with_bias=False)(x)", (2, 3), "normal", None),
    ("hk.Linear(4)(x, precision=jax.lax.Precision.HIGHEST)", (2, 3), "normal", None),
    ("hk.Conv1D(4, 3, stride=2, rate=2, padding=hk.pad.causal)(x)", (2, 9, 3), "normal", None),
    ("hk.Conv2D(4, 3)(x)", (2, 6, 6, 3), "normal", None),
    ("hk.Conv2D(6, (3, 2), stride=(2, 1), padding='valid', feature_group_count=3)(x)", (2, 7, 6, 3), "normal", None),
    ("hk.Conv2D(4, 3, padding=[hk.pad.full, hk.pad.reverse_causal])(x)", (1, 5, 5, 2), "normal", None),
    ("hk.ConvND(3, 2, [2], padding=(1, 0), with_bias=False)(x)", (1, 4, 4, 4, 2), "normal", None),
    ("hk.Conv2D(3, 3, mask=jnp.tril(jnp.ones((3, 3, 2, 3))))(x)", (1, 5, 5, 2), "normal", None),
    ("hk.Conv2DTranspose(3, 3, stride=2)(x)", (2, 4, 4, 2), "normal", None),
    ("hk.Conv1DTranspose(3, 4, stride=2, padding='VALID')(x)", (2, 5, 2), "normal", None),
    ("hk.DepthwiseConv2D(2, 3, stride=2)(x)", (2, 6, 6, 3), "normal", None),
    ("hk.DepthwiseConv1D(1, 3, rate=2, padding='VALID')(x)", (2, 9, 2), "normal", None),
    ("hk.LayerNorm(-1, True, True)(x)", (3, 8), "flat", None),
    ("hk.LayerNorm(axis=(1, 2), create_scale=True, create_offset=False, eps=1e-3, param_axis=(1, 2))(x)",
     (2, 3, 4), "flat", None),
    ("hk.LayerNorm(slice(-2, None), False, True)(x)", (2, 3, 4), "flat", None),
    ("hk.InstanceNorm(True, True)(x)", (2, 4, 4, 3), "flat", None),
    ("hk.GroupNorm(2)(x)", (2, 3, 3, 4), "flat", None),
    ("hk.GroupNorm(2, create_scale=False, eps=1e-4)(x)", (2, 3, 3, 4), "flat", None),
    ("hk.RMSNorm(-1)(x)", (3, 8), "small", None),
    ("hk.RMSNorm(-1, create_scale=False, eps=1e-6)(x)", (3, 8), "small", None),
    ("hk.Embed(11, 4)(x)", (2, 5), "ids", None),
    ("hk.Bias()(x)", (2, 3, 4), "normal", None),
    ("hk.Bias(bias_dims=[-1])(x, multiplier=-2.0)", (2, 3, 4), "normal", None),
    ("hk.Bias(bias_dims=[1], b_init=hk.initializers.Constant(0.5))(x)", (2, 3, 4), "normal", None),
    ("hk.Flatten()(x)", (2, 3, 4), "normal", None),
    ("hk.Flatten()(x)", (3,), "normal", None),
    ("hk.Flatten(preserve_dims=-2)(x)", (2, 3, 4), "normal", None),
    ("hk.Reshape((2, -1), preserve_dims=2)(x)", (2, 3, 4, 2), "normal", None),
    ("hk.Sequential([hk.Linear(4), jax.nn.relu, hk.Flatten(), hk.Linear(2)])(x)", (2, 3), "normal",
     {"linear": ("Dense_0",), "linear_1": ("Dense_1",)}),
    ("hk.Sequential([hk.Conv2D(2, 3), hk.MaxPool(2, 2, 'SAME'), hk.Flatten(), hk.Linear(3)])(x)", (2, 5, 5, 3),
     "normal", {"conv2_d": ("Conv_0",), "linear": ("Dense_0",)}),
    ("hk.nets.MLP([4, 3, 2], activation=jax.nn.tanh)(x)", (2, 3), "normal",
     {f"mlp/~/linear_{i}": ("MLP_0", f"linear_{i}") for i in range(3)}),
    ("hk.nets.MLP([4, 2], with_bias=False, activate_final=True)(x)", (2, 3), "normal",
     {f"mlp/~/linear_{i}": ("MLP_0", f"linear_{i}") for i in range(2)}),
    ("hk.nets.MLP([5, 4, 2])(x, dropout_rate=0.5, rng=jax.random.PRNGKey(5))", (3, 3), "normal",
     {f"mlp/~/linear_{i}": ("MLP_0", f"linear_{i}") for i in range(3)}),
]

#: Norms whose learned scale Flax multiplies in a different order than Haiku (see layers_norm).
SCALE_ORDER = {"hk.GroupNorm(2)(x)", "hk.RMSNorm(-1)(x)"}


def _haiku(src: str, x: jax.Array) -> tuple[dict, jax.Array]:
    def forward(x):
        return eval(src, {"hk": hk, "jax": jax, "jnp": jnp, "x": x})

    transformed = hk.transform(forward)
    params = _randomize(transformed.init(jax.random.PRNGKey(0), x))
    return params, transformed.apply(params, None, x)


class _Wrap(nn.Module):
    """Evaluates the emitted expression inside a compact method, as migrated code does."""

    src: str
    namespace: Callable[[], dict]

    @nn.compact
    def __call__(self, x):
        return eval(self.src, {**self.namespace(), "x": x})


def _flax_namespace() -> dict:
    namespace = {"nn": nn, "jnp": jnp, "jax": jax, "Callable": Callable, "Sequence": Sequence}
    for qualname in ("haiku.nets.MLP", "haiku.Bias"):  # the helper classes the engine emits once per file
        exec(helper_class(qualname)[1], namespace)
    return namespace


@pytest.mark.parametrize(("src", "shape", "kind", "path_map"), CASES, ids=[c[0] for c in CASES])
def test_emitted_layer_matches_haiku(src, shape, kind, path_map) -> None:
    x = _input(shape, kind)
    flax_src = migrate(src)
    with jax.default_matmul_precision("highest"):
        hk_params, expected = _haiku(src, x)
        wrap = _Wrap(flax_src, _flax_namespace)
        shapes = wrap.init(jax.random.PRNGKey(1), x).get("params", {})
        if path_map is None:  # one Haiku module <-> the one Flax child of the wrapper
            path_map = {m: tuple(shapes) for m in hk_params}
        params = to_flax(hk_params, path_map, shapes, transpose="Transpose" in src)
        assert jax.tree_util.tree_structure(params) == jax.tree_util.tree_structure(dict(shapes)), flax_src
        actual = wrap.apply({"params": params}, x) if params else wrap.apply({}, x)
    assert actual.shape == expected.shape, flax_src
    if src in SCALE_ORDER:
        # Haiku computes (x_hat * scale), Flax x_hat-parts * (rsqrt * scale): same math, and
        # float rounding moves the last bit of some outputs. Nothing else may differ.
        atol = 2 * np.finfo(np.float32).eps * float(np.abs(expected).max())
        np.testing.assert_allclose(actual, expected, rtol=0, atol=atol, err_msg=flax_src)
    else:
        np.testing.assert_array_equal(actual, expected, err_msg=flax_src)


def test_norm_probe_rejects_flax_defaults() -> None:
    """The near-constant probe input really detects Flax's default epsilon/variance."""
    x = _input((3, 8), "flat")
    _, expected = _haiku("hk.LayerNorm(-1, False, False)(x)", x)
    naive = nn.LayerNorm(use_scale=False, use_bias=False).apply({}, x)
    assert float(jnp.max(jnp.abs(naive - expected))) > 1e-2


def test_transposed_kernel_init_draws_haikus_layout() -> None:
    """A fan-based w_init on ConvTranspose sees Haiku's [*k, O, I] shape, then is transposed."""
    x = _input((1, 4, 4, 2), "normal")
    src = "hk.Conv2DTranspose(5, 3, w_init=hk.initializers.VarianceScaling(2.0, 'fan_in', 'uniform'))"
    rng = jax.random.PRNGKey(4)
    hk_w = hk.transform(lambda x: eval(src, {"hk": hk})(x)).init(rng, x)["conv2_d_transpose"]["w"]
    flax_src = code(_unwrap(rewrite_layer(cst.parse_expression(src), "haiku.Conv2DTranspose", name=None)))
    layer = eval(flax_src, _flax_namespace())
    kernel = layer.kernel_init(next(hk.PRNGSequence(rng)), (3, 3, 2, 5), jnp.float32)
    np.testing.assert_allclose(kernel, jnp.swapaxes(hk_w, -1, -2), rtol=1e-6)
