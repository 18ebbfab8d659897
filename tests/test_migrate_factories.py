"""Factory functions over ``hk.transform`` and ``hk.transform(functools.partial(...))`` across files.

A package defines ``make_net(config)`` (a nested def under ``hk.transform``) and
``make_head(width)`` (``functools.partial`` of a module-level def); a training
script imports them, binds ``net = make_net(...)`` and calls ``net.init`` /
``net.apply`` with Haiku's signatures. ``flaxify migrate`` over the folder must
turn both files into a Flax program that trains to the same losses, bit for
bit, from the same (mapped) parameters. The ``ast`` index that carries factories
to importing files must agree with the engine on which factories it converts.
"""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path
from types import ModuleType

import jax.numpy as jnp
import numpy as np
import pytest
from click.testing import CliRunner

from flaxify.cli import cli
from flaxify.migrate import migrate_source
from flaxify.migrate.project import FACTORY_SUFFIX, index_sources

NETS = '''"""Models built by factories."""
import dataclasses
import functools

import haiku as hk
import jax


@dataclasses.dataclass(frozen=True)
class Config:
    hidden: int = 8
    outputs: int = 2


class Mlp(hk.Module):
    def __init__(self, config, name=None):
        super().__init__(name=name)
        self.config = config

    def __call__(self, x):
        x = jax.nn.tanh(hk.Linear(self.config.hidden)(x))
        return hk.Linear(self.config.outputs)(x)


def make_net(config: Config) -> hk.Transformed:
    def forward(x):
        return Mlp(config)(x)

    return hk.transform(forward)


def head_fn(x, width, activation):
    return activation(hk.Linear(width)(x))


def make_head(width):
    return hk.without_apply_rng(hk.transform(functools.partial(head_fn, width=width, activation=jax.nn.relu)))
'''

TRAIN = '''"""Trains the factory-built model."""
import jax
import jax.numpy as jnp
import optax

from fxf_models import nets
from fxf_models.nets import Config, make_net

net = make_net(Config())
head = nets.make_head(3)
opt = optax.sgd(0.1)


def loss_fn(params, x, y):
    return jnp.mean((net.apply(params, None, x) - y) ** 2)


def init(seed, x):
    return net.init(jax.random.PRNGKey(seed), x)


def train(params, x, y, steps=3):
    opt_state = opt.init(params)
    losses = []
    for _ in range(steps):
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        updates, opt_state = opt.update(grads, opt_state)
        params = optax.apply_updates(params, updates)
        losses.append(loss)
    return params, losses


def inline(params, x):
    return make_net(Config()).apply(params, None, x)
'''


def _program(root: Path) -> None:
    (root / "fxf_models").mkdir(parents=True)
    (root / "fxf_models" / "__init__.py").write_text("")
    (root / "fxf_models" / "nets.py").write_text(NETS)
    (root / "fxf_train.py").write_text(TRAIN)


def _import(root: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """``fxf_train`` as found under ``root`` (the other tree's modules are forgotten first)."""
    for name in [n for n in sys.modules if n.split(".")[0] in ("fxf_models", "fxf_train")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.syspath_prepend(str(root))
    return importlib.import_module("fxf_train")


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """The program before and after ``flaxify migrate -o out .``, and the run's stderr."""
    root = tmp_path_factory.mktemp("factories")
    source, out = root / "src", root / "out"
    _program(source)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(source)
        result = CliRunner().invoke(cli, ["migrate", "-o", str(out), "."], catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    return source, out, result.stderr


def test_factories_and_their_importer_migrate_with_one_todo(migrated: tuple[Path, Path, str]) -> None:
    _, out, stderr = migrated
    nets, train = (out / "fxf_models" / "nets.py").read_text(), (out / "fxf_train.py").read_text()
    assert "haiku" not in nets and "functools" not in nets
    assert "def make_net(config: Config) -> nn.Module:" in nets
    assert "return HeadFn(width=width, activation=jax.nn.relu)" in nets
    # Haiku's apply(params, rng, x) with a model drawing no random numbers: the rng goes.
    assert "net.apply({\"params\": params}, x)" in train
    assert "net.init(jax.random.PRNGKey(seed), x)[\"params\"]" in train
    # One TODO: the factory's result used on the spot (line numbers count the TODO line above it).
    todos = re.findall(r"^(\S+):(\d+): TODO (\S+):", stderr, re.MULTILINE)
    line = TRAIN.splitlines().index("    return make_net(Config()).apply(params, None, x)") + 2
    assert [(Path(path).name, int(number), construct) for path, number, construct in todos] == [
        ("fxf_train.py", line, "make_net")
    ]


def test_migrated_program_trains_to_haikus_losses_bit_for_bit(
    migrated: tuple[Path, Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from flaxify.equivalence import map_params

    source, out, _ = migrated
    x = jnp.linspace(-1.0, 1.0, 12, dtype=jnp.float32).reshape(3, 4)
    y = jnp.ones((3, 2), jnp.float32)
    haiku = _import(source, monkeypatch)
    haiku_params = haiku.init(0, x)
    _, haiku_losses = haiku.train(haiku_params, x, y)
    flax = _import(out, monkeypatch)
    template = flax.init(0, x)
    params = map_params(haiku_params, None, {"params": template}, root_is_module=False)["params"]
    _, flax_losses = flax.train(params, x, y)
    assert np.array_equal(np.asarray(flax_losses), np.asarray(haiku_losses)), (flax_losses, haiku_losses)
    assert float(haiku_losses[-1]) < float(haiku_losses[0])  # it did train


def test_partial_factory_from_another_module_is_bit_exact(
    migrated: tuple[Path, Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from flaxify.equivalence import compare, parse_spec

    source, out, _ = migrated
    haiku_head = _import(source, monkeypatch).head
    flax_head = _import(out, monkeypatch).head
    report = compare(haiku_head, flax_head, [parse_spec("f32[2,4]")], devices="cpu")
    assert report.bitexact, report.format_table()


# (factory source, does the engine convert it). The index must say the same of each.
SHAPES = {
    "nested_def": ("def make(c):\n    def f(x):\n        return hk.Linear(c)(x)\n\n    return hk.transform(f)\n", True),
    "module_def": ("def f(x):\n    return hk.Linear(2)(x)\n\n\ndef make():\n    return hk.transform_with_state(f)\n", True),
    "partial_keywords": (
        (
            "def make(c):\n    def f(x, width):\n        return hk.Linear(width)(x)\n\n"
            "    return hk.without_apply_rng(hk.transform(functools.partial(f, width=c)))\n"
        ),
        True,
    ),
    "partial_positional": (
        "def make(c):\n    def f(width, x):\n        return hk.Linear(width)(x)\n\n    return hk.transform(functools.partial(f, c))\n",
        False,
    ),
    "partial_of_shared_def": (
        (
            "def f(x, width):\n    return hk.Linear(width)(x)\n\n\ndef g(x):\n    return f(x, 2)\n\n\n"
            "def make():\n    return hk.transform(functools.partial(f, width=3))\n"
        ),
        False,
    ),
    "partial_reserved_name": (
        (
            "def make(c):\n    def f(x, name):\n        return hk.Linear(2, name=name)(x)\n\n"
            "    return hk.transform(functools.partial(f, name=c))\n"
        ),
        False,
    ),
    "shadowed_by_parameter": ("def f(x):\n    return hk.Linear(2)(x)\n\n\ndef make(f):\n    return hk.transform(f)\n", False),
    "decorated_def": (
        "def make():\n    @jax.named_call\n    def f(x):\n        return hk.Linear(2)(x)\n\n    return hk.transform(f)\n",
        False,
    ),
    "one_return_not_a_transform": (
        "def make(c):\n    def f(x):\n        return hk.Linear(2)(x)\n\n    if c:\n        return None\n    return hk.transform(f)\n",
        False,
    ),
    "lambda": ("def make():\n    return hk.transform(lambda x: hk.Linear(2)(x))\n", False),
}


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_index_and_engine_agree_on_which_factories_convert(name: str) -> None:
    body, converts = SHAPES[name]
    source = f"import functools\n\nimport haiku as hk\nimport jax\n\n\n{body}".encode()
    result = migrate_source(source, "model.py")
    converted = "hk.transform" not in result.source.decode() and not result.todos
    assert converted is converts, result.source.decode()
    index = index_sources([(Path("model.py"), source)])
    indexed = ("model", "make" + FACTORY_SUFFIX) in {(Path(module).name, name) for module, name in index.transformed}
    assert indexed is converts


def test_a_factory_of_the_same_file_binds_its_callers_names() -> None:
    source = (
        b"import haiku as hk\n\n\ndef make(width):\n    def f(x):\n        return hk.Linear(width)(x)\n\n"
        b"    return hk.transform_with_state(f)\n\n\ndef run(rng, x):\n    model = make(3)\n"
        b"    params, state = model.init(rng, x)\n    return model.apply(params, state, rng, x)\n"
    )
    text = migrate_source(source, "model.py").source.decode()
    assert "    return F()\n" in text
    assert "    state = model.init(rng, x)\n    params = state.pop(\"params\")\n" in text
    assert "model.apply({\"params\": params, **state}, x, mutable=list(state))" in text


@pytest.mark.parametrize(
    ("signature", "expected"),
    [
        ("x, width", "def __call__(self, x):"),
        ("width, x", "def __call__(self, *, x):"),  # x after the bound width: keyword-only, as under the partial
        ("x, width, y=1, *args, z", "def __call__(self, x, *args, y=1, z):"),
        ("x, *, width, scale=2.0", "def __call__(self, x, *, scale=2.0):"),
    ],
)
def test_partial_leaves_the_unbound_parameters_callable_as_the_partial_was(signature: str, expected: str) -> None:
    source = (
        f"import functools\n\nimport haiku as hk\n\n\ndef f({signature}):\n    return hk.Linear(width)(x)\n\n\n"
        "net = hk.transform(functools.partial(f, width=3))\n"
    ).encode()
    result = migrate_source(source, "model.py")
    text = result.source.decode()
    assert not result.todos, text
    assert expected in text and "    width: Any\n" in text and "net = F(width=3)" in text


def test_a_closure_transforms_a_def_of_its_enclosing_function() -> None:
    source = (
        b"import haiku as hk\n\n\ndef main(width):\n    def forward(x):\n        return hk.Linear(width)(x)\n\n"
        b"    def run(x):\n        net = hk.without_apply_rng(hk.transform(forward))\n"
        b"        return net.apply(net.init(None, x), x)\n\n    return run\n"
    )
    result = migrate_source(source, "model.py")
    text = result.source.decode()
    assert not result.todos and "haiku" not in text, text
    assert "    class Forward(nn.Module):" in text and "        net = Forward()\n" in text
