"""hk.custom_creator with a constant initializer -> nn.map_variables storing the same values.

The fixture ``fixtures/migrate/custom_creators/constant_inits`` is checked
bit-exact (outputs on Haiku's mapped parameters) by test_migrate_fixtures.py;
here the values each library stores at init are compared, and the creators
that stay TODO are pinned.
"""

from __future__ import annotations

import importlib.util
import textwrap
from pathlib import Path
from types import ModuleType

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flaxify.migrate import migrate_source

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "migrate" / "custom_creators" / "constant_inits"


def _load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_init_stores_the_creators_values_as_haiku_does() -> None:
    haiku_net = _load(FIXTURE.with_name("constant_inits.before.py"), "creators_hk").net
    flax_net = _load(FIXTURE.with_name("constant_inits.after.py"), "creators_fx").net
    x = jnp.ones([2, 8])
    hk_params = haiku_net.init(jax.random.PRNGKey(0), x)
    fx_params = flax_net.init(jax.random.PRNGKey(0), x)["params"]["head"]
    pairs = {  # Haiku module -> (Flax module, {Haiku leaf: Flax leaf})
        "head/logits": ("logits", {"w": "kernel", "b": "bias"}),
        "head/linear_1": ("linear_1", {"w": "kernel", "b": "bias"}),
        "head/scale": ("scale", {"w": "kernel"}),
    }
    for hk_name, (fx_name, leaves) in pairs.items():
        assert set(hk_params[hk_name]) == set(leaves)
        for hk_leaf, fx_leaf in leaves.items():
            ours, theirs = np.asarray(fx_params[fx_name][fx_leaf]), np.asarray(hk_params[hk_name][hk_leaf])
            assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
            np.testing.assert_array_equal(ours, theirs)
    assert np.all(np.asarray(hk_params["head/logits"]["w"]) == 0.0) and np.all(np.asarray(hk_params["head/linear_1"]["b"]) == 0.5)
    # The layer outside the blocks keeps its random draw.
    assert np.std(np.asarray(fx_params["linear"]["kernel"])) > 0.0


def _migrate(prelude: str, block: str) -> tuple[str, list[str]]:
    source = (
        "import haiku as hk\nimport jax\nimport jax.numpy as jnp\n\n\n"
        + textwrap.dedent(prelude)
        + "\n\nclass M(hk.Module):\n    def __call__(self, x):\n"
        + textwrap.indent(textwrap.dedent(block), "        ")
        + "\n\n\nnet = hk.without_apply_rng(hk.transform(lambda x: M()(x)))\n"
    )
    result = migrate_source(source.encode(), "case.py")
    assert migrate_source(result.source, "case.py").source == result.source
    return result.source.decode(), [t.construct for t in result.todos]


ZEROS = "def zeros(next_creator, shape, dtype, init, context):\n    return next_creator(shape, dtype, jnp.zeros)\n"


def test_a_zeros_creator_wraps_each_layer_built_in_the_block() -> None:
    out, todos = _migrate(ZEROS, "with hk.custom_creator(zeros):\n    y = hk.Linear(4)(x)\n    y = hk.Linear(4)(y)\nreturn y")
    assert todos == []
    assert out.count('nn.map_variables(nn.Dense, "params", trans_out_fn=lambda vs: jax.tree.map(jnp.zeros_like, vs), init=True)') == 2
    assert "custom_creator" not in out.split("class M")[1]


@pytest.mark.parametrize(
    ("prelude", "block"),
    [
        # reads the context: Haiku's module path decides
        (
            "def c(next_creator, shape, dtype, init, context):\n    return next_creator(shape, dtype, jnp.zeros if 'w' in context.full_name else init)\n",
            "with hk.custom_creator(c):\n    y = hk.Linear(4)(x)\nreturn y",
        ),
        # changes the dtype of a convolution (lax does not promote a float32 input against bfloat16 weights)
        (
            "def c(next_creator, shape, dtype, init, context):\n    return next_creator(shape, jnp.bfloat16, init)\n",
            "with hk.custom_creator(c):\n    y = hk.Conv1D(4, 3)(x)\nreturn y",
        ),
        # transforms the value the next creator makes
        ("def c(next_creator, shape, dtype, init, context):\n    return next_creator(shape, dtype, init) * 0.1\n", "with hk.custom_creator(c):\n    y = hk.Linear(4)(x)\nreturn y"),
        # state=True also reaches hk.get_state
        (ZEROS, "with hk.custom_creator(zeros, state=True):\n    y = hk.Linear(4)(x)\nreturn y"),
        # a layer built before the block is created in it (Haiku creates parameters at the first call)
        (ZEROS, "lin = hk.Linear(4)\nwith hk.custom_creator(zeros):\n    y = lin(x)\nreturn y"),
        # a layer built in the block but first called after it is created outside it
        (ZEROS, "with hk.custom_creator(zeros):\n    lin = hk.Linear(4)\nreturn lin(x)"),
    ],
)
def test_other_creators_stay_todo(prelude: str, block: str) -> None:
    out, todos = _migrate(prelude, block)
    assert todos == ["hk.custom_creator"]
    assert "map_variables(nn." not in out and "param_dtype=jnp" not in out and "with hk.custom_creator(" in out


def test_a_dtype_creator_is_param_dtype_on_each_dense() -> None:
    prelude = "def c(next_creator, shape, dtype, init, context):\n    return next_creator(shape, jnp.bfloat16, init)\n"
    out, todos = _migrate(prelude, "with hk.custom_creator(c):\n    y = hk.Linear(4, name='proj')(x)\nreturn hk.Linear(4)(y)")
    assert todos == []
    assert 'param_dtype=jnp.bfloat16, name="proj")' in out
    assert out.count("param_dtype") == 1  # the layer after the block keeps float32


def test_dtype_creator_stores_the_same_dtypes_and_law() -> None:
    """Both libraries create the block's parameters in bfloat16 from the layer's own initializer."""
    haiku_net = _load(FIXTURE.with_name("param_dtype.before.py"), "creator_dtype_hk").net
    flax_net = _load(FIXTURE.with_name("param_dtype.after.py"), "creator_dtype_fx").net
    x = jnp.ones([2, 8])
    hk_params = haiku_net.init(jax.random.PRNGKey(0), x)
    fx_params = flax_net.init(jax.random.PRNGKey(0), x)["params"]["mixer"]
    for hk_name, fx_name in (("mixer/up", "up"), ("mixer/down", "down"), ("mixer/linear", "linear")):
        theirs, ours = hk_params[hk_name]["w"], fx_params[fx_name]["kernel"]
        assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
        # Haiku's truncated normal, 1/sqrt(fan_in) scale: every draw within two of its standard deviations.
        bound = 2.0 / np.sqrt(theirs.shape[0]) / 0.87962566103423978 * 1.01
        assert np.abs(np.asarray(ours, np.float32)).max() <= bound and np.abs(np.asarray(theirs, np.float32)).max() <= bound
    assert fx_params["up"]["kernel"].dtype == jnp.bfloat16 and fx_params["linear"]["kernel"].dtype == jnp.float32
