"""``hk.SpectralNorm`` / ``hk.SNParamsTree`` and ``hk.data_structures.map`` / ``is_subset`` migrate exactly.

The Linen helpers are taken from real migrated source (``migrate_source``
output, executed as a user would) and run next to Haiku's own modules: with
Haiku's state ``u0`` / ``sigma`` handed to the port, outputs and updated state
are bit-identical; ``init`` and ``update_stats`` write the same state leaves.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import serialization

from flaxify.cli import main
from flaxify.equivalence.convert import save_npz
from flaxify.equivalence.refs import resolve_ref
from flaxify.migrate import migrate_source
from flaxify.migrate.layers import helper_class

SOURCE = b'''import haiku as hk


def use(w, params, other):
    a = hk.SpectralNorm(eps=1e-6, n_steps=2)(w)
    b = hk.SNParamsTree(ignore_regex=".*/b$")(params)
    doubled = hk.data_structures.map(lambda m, n, v: 2 * v, params)
    return a, b, doubled, hk.data_structures.is_subset(subset=other, superset=params)
'''

GAN = Path(__file__).resolve().parent.parent / "fixtures" / "migrate" / "state" / "spectral_norm_gan"


@pytest.fixture(scope="module")
def helpers() -> dict[str, Any]:
    migrated = migrate_source(SOURCE, "use.py").source.decode()
    assert "import haiku" not in migrated
    namespace: dict[str, Any] = {}
    exec(compile(migrated, "use.py", "exec"), namespace)  # noqa: S102 (the emitted helpers, run as a user would)
    return namespace


def _haiku_sn(eps: float, n_steps: int, update_stats: bool) -> hk.TransformedWithState:
    return hk.transform_with_state(lambda w: hk.SpectralNorm(eps=eps, n_steps=n_steps)(w, update_stats=update_stats))


@pytest.mark.parametrize(("shape", "eps", "n_steps"), [((5, 3), 1e-4, 1), ((2, 3, 4), 1e-6, 3)], ids=["matrix", "rank3"])
def test_spectral_norm_is_bit_exact_with_haikus_state(
    helpers: dict[str, Any], shape: tuple[int, ...], eps: float, n_steps: int
) -> None:
    w = jax.random.normal(jax.random.key(0), shape)
    haiku = _haiku_sn(eps, n_steps, update_stats=True)
    flax_sn = helpers["SpectralNorm"](eps=eps, n_steps=n_steps)
    _, hk_state = haiku.init(jax.random.key(1), w)
    hk_apply = jax.jit(haiku.apply)
    fx_apply = jax.jit(lambda v, w: flax_sn.apply(v, w, mutable=["state"]))
    fx_state = {"state": dict(hk_state["spectral_norm"])}
    for step in range(3):  # the power iteration advances from the carried state
        w_step = w + 0.5 * step
        hk_out, hk_state = hk_apply({}, hk_state, None, w_step)
        fx_out, fx_state = fx_apply(fx_state, w_step)
        np.testing.assert_array_equal(np.asarray(fx_out), np.asarray(hk_out))
        for leaf in ("u0", "sigma"):
            np.testing.assert_array_equal(np.asarray(fx_state["state"][leaf]), np.asarray(hk_state["spectral_norm"][leaf]))


@pytest.mark.parametrize("update_stats", [True, False])
def test_init_writes_the_state_haiku_writes(helpers: dict[str, Any], update_stats: bool) -> None:
    """u0 keeps its raw normal draw at init; sigma exists only if update_stats, estimated from that draw."""
    w = jax.random.normal(jax.random.key(2), (6, 16))
    _, hk_state = _haiku_sn(1e-4, 1, update_stats).init(jax.random.key(3), w)
    fx_state = helpers["SpectralNorm"]().init(jax.random.key(3), w, update_stats=update_stats)["state"]
    expected = {"u0", "sigma"} if update_stats else {"u0"}
    assert set(hk_state["spectral_norm"]) == expected == set(fx_state)
    for u0 in (hk_state["spectral_norm"]["u0"], fx_state["u0"]):
        assert u0.shape == (1, 16) and abs(float(jnp.linalg.norm(u0)) - 1.0) > 1e-2  # a draw, not a normalised iterate
    if update_stats:  # init's sigma is the estimate from init's u0, in both libraries
        again = helpers["SpectralNorm"]().apply({"state": {"u0": fx_state["u0"]}}, w, mutable=["state"])[1]
        np.testing.assert_array_equal(np.asarray(again["state"]["sigma"]), np.asarray(fx_state["sigma"]))
        hk_again = _haiku_sn(1e-4, 1, True).apply({}, {"spectral_norm": {"u0": hk_state["spectral_norm"]["u0"]}}, None, w)[1]
        np.testing.assert_array_equal(
            np.asarray(hk_again["spectral_norm"]["sigma"]), np.asarray(hk_state["spectral_norm"]["sigma"])
        )


def test_update_stats_false_leaves_the_state_alone(helpers: dict[str, Any]) -> None:
    w = jax.random.normal(jax.random.key(4), (4, 4))
    haiku = _haiku_sn(1e-4, 1, update_stats=False)
    _, hk_state = _haiku_sn(1e-4, 1, update_stats=True).init(jax.random.key(5), w)
    hk_out, hk_new = haiku.apply({}, hk_state, None, w)
    fx_out, fx_new = helpers["SpectralNorm"]().apply(
        {"state": dict(hk_state["spectral_norm"])}, w, update_stats=False, mutable=["state"]
    )
    np.testing.assert_array_equal(np.asarray(fx_out), np.asarray(hk_out))
    for leaf in ("u0", "sigma"):
        assert fx_new["state"][leaf] is hk_state["spectral_norm"][leaf] is hk_new["spectral_norm"][leaf]


@pytest.mark.parametrize(
    ("shape", "kwargs", "message"),
    [((3,), {}, "not well defined for scalar or vector"), ((2, 3, 4), {"error_on_non_matrix": True}, "Input is 3D")],
)
def test_errors_like_haiku(helpers: dict[str, Any], shape: tuple[int, ...], kwargs: dict[str, bool], message: str) -> None:
    w = jnp.ones(shape)
    haiku = hk.transform_with_state(lambda w: hk.SpectralNorm()(w, **kwargs))
    with pytest.raises(ValueError, match=message):
        haiku.init(jax.random.key(0), w)
    with pytest.raises(ValueError, match=message):
        helpers["SpectralNorm"]().init(jax.random.key(0), w, **kwargs)


def test_sn_params_tree_matches_haiku_names_and_values(helpers: dict[str, Any]) -> None:
    keys = iter(jax.random.split(jax.random.key(6), 4))
    tree = {
        "mlp/~/linear_0": {"w": jax.random.normal(next(keys), (3, 4)), "b": jax.random.normal(next(keys), (4,))},
        "linear": {"w": jax.random.normal(next(keys), (4, 2))},
    }
    haiku = hk.transform_with_state(lambda t: hk.SNParamsTree(ignore_regex=".*/b$")(t))
    _, hk_state = haiku.init(jax.random.key(7), tree)
    prefix = "sn_params_tree/"
    assert sorted(hk_state) == [prefix + "linear__w", prefix + "mlp___tilde__linear_0__w"]
    flax_tree = helpers["SNParamsTree"](ignore_regex=".*/b$")
    assert set(flax_tree.init(jax.random.key(7), tree)["state"]) == {k.removeprefix(prefix) for k in hk_state}
    fx_state = {"state": {k.removeprefix(prefix): dict(v) for k, v in hk_state.items()}}
    hk_out, hk_new = haiku.apply({}, hk_state, None, tree)
    fx_out, fx_new = flax_tree.apply(fx_state, tree, mutable=["state"])
    assert fx_out["mlp/~/linear_0"]["b"] is tree["mlp/~/linear_0"]["b"]  # ignored leaves pass through
    for (hk_path, hk_leaf), (fx_path, fx_leaf) in zip(
        jax.tree_util.tree_leaves_with_path(hk_out), jax.tree_util.tree_leaves_with_path(fx_out), strict=True
    ):
        assert hk_path == fx_path
        np.testing.assert_array_equal(np.asarray(fx_leaf), np.asarray(hk_leaf))
    for name, leaves in hk_new.items():
        for leaf, value in leaves.items():
            np.testing.assert_array_equal(np.asarray(fx_new["state"][name.removeprefix(prefix)][leaf]), np.asarray(value))


@pytest.mark.parametrize(
    ("haiku_src", "flax_src", "todo"),
    [
        ("hk.SpectralNorm()", 'SpectralNorm(name="spectral_norm")', False),
        ("hk.SpectralNorm(1e-6, 2)", 'SpectralNorm(eps=1e-6, n_steps=2, name="spectral_norm")', False),
        ('hk.SpectralNorm(eps=1e-4, name="sn")', 'SpectralNorm(name="sn")', False),
        ("hk.SNParamsTree(n_steps=k)", 'SNParamsTree(n_steps=k, name="sn_params_tree")', False),
        ('hk.SNParamsTree(ignore_regex=".*b$")', 'SNParamsTree(ignore_regex=".*b$", name="sn_params_tree")', True),
    ],
)
def test_constructor_rewrites(haiku_src: str, flax_src: str, todo: bool) -> None:
    source = f"import haiku as hk\n\n\ndef f(x, k):\n    return {haiku_src}(x)\n\n\nnet = hk.transform_with_state(f)\n".encode()
    out = migrate_source(source, "f.py").source.decode()
    assert f"return {flax_src}(x)" in out
    assert ("TODO(flaxify): hk.SNParamsTree: ignore_regex" in out) is todo
    assert "import haiku" not in out and out.count("\nclass SpectralNorm(") == 1


def test_data_structures_map_and_is_subset_match_haiku(helpers: dict[str, Any]) -> None:
    tree = {"b_mod": {"w": jnp.ones((2, 2)), "b": jnp.zeros(2)}, "a_mod/~/inner": {"w": jnp.full((3,), 2.0)}}
    calls: dict[str, list[tuple[str, str]]] = {"haiku": [], "flax": []}

    def fn(log: list[tuple[str, str]]) -> Any:
        return lambda m, n, v: log.append((m, n)) or v * 3.0

    expected = hk.data_structures.map(fn(calls["haiku"]), tree)
    got = helpers["map"](fn(calls["flax"]), tree)
    assert calls["flax"] == calls["haiku"]  # the callback runs in Haiku's order
    assert jax.tree.structure(got) == jax.tree.structure(expected) and list(got) == list(expected)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(expected), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    pairs = [({"a": {}}, {}), ({"b_mod": {"w": 0}}, tree), (tree, {"b_mod": tree["b_mod"]}), ({"x": {"w": 1}}, tree)]
    for subset, superset in pairs:
        haiku_says = hk.data_structures.is_subset(subset=subset, superset=superset)
        assert helpers["is_subset"](subset=subset, superset=superset) is haiku_says


def test_haiku_map_transform_is_not_the_data_structures_helper() -> None:
    assert helper_class("haiku.map") is None
    assert helper_class("haiku.data_structures.map") is not None


def test_builtin_map_in_the_file_keeps_the_haiku_call() -> None:
    source = (
        b"import haiku as hk\n\n\n"
        b"def f(params, xs):\n    return hk.data_structures.map(lambda m, n, v: v, params), list(map(str, xs))\n"
    )
    out = migrate_source(source, "f.py").source.decode()
    assert "hk.data_structures.map(" in out and "would shadow the map" in out
    assert "\ndef map(" not in out


def test_convert_params_carries_trained_spectral_state(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A trained SN-GAN discriminator checkpoint (params and u0/sigma) converts and reproduces Haiku bit for bit."""
    haiku_ref, flax_ref = f"{GAN}.before.py:discriminator", f"{GAN}.after.py:discriminator"
    net = resolve_ref(haiku_ref)
    x = jax.random.normal(jax.random.key(8), (2, 8, 8, 3))
    params, state = net.init(jax.random.key(9), x, is_training=True)
    for step in range(2):
        _, state = net.apply(params, state, None, x + step, is_training=True)
    params, state = jax.device_get((params, state))
    save_npz(tmp_path / "ckpt.npz", params, state)
    out = tmp_path / "flax.msgpack"
    args = ["--input", "f32[2,8,8,3]", "--kwargs", '{"is_training": false}']
    assert main(["convert-params", haiku_ref, flax_ref, str(tmp_path / "ckpt.npz"), "-o", str(out), *args]) == 0, (
        capsys.readouterr().err
    )
    variables = serialization.msgpack_restore(out.read_bytes())
    for haiku_path, flax_path in [("sn_conv2_d/~/sn", ("sn_conv2_d", "sn")), ("logit/spectral_norm", ("logit", "spectral_norm"))]:
        for leaf in ("u0", "sigma"):
            np.testing.assert_array_equal(variables["state"][flax_path[0]][flax_path[1]][leaf], state[haiku_path][leaf])
    hk_out, _ = net.apply(params, state, None, x, is_training=False)
    fx_out, _ = resolve_ref(flax_ref).apply(variables, x, is_training=False, mutable=["state"])
    np.testing.assert_array_equal(np.asarray(fx_out), np.asarray(hk_out))
