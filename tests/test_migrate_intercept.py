"""hk.intercept_methods -> nn.intercept_methods for interceptors that see the same calls in Linen.

The fixture ``fixtures/migrate/intercept/own_classes`` is checked bit-exact by
test_migrate_fixtures.py; here the interceptor is shown to act in both
libraries (the outputs move with it), and the interceptors that stay TODO are
pinned.
"""

from __future__ import annotations

import importlib.util
import textwrap
from pathlib import Path
from types import ModuleType

import flax.linen as nn
import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flaxify.migrate import migrate_source

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "migrate" / "intercept"


def _load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_interceptor_acts_in_both_libraries_alike() -> None:
    """Haiku's output with the interceptor equals Linen's on the same weights; without it, both change."""
    before = _load(FIXTURES / "own_classes.before.py", "intercept_hk")
    after = _load(FIXTURES / "own_classes.after.py", "intercept_fx")
    x = jax.random.normal(jax.random.PRNGKey(1), [2, 8])
    params = before.net.init(jax.random.PRNGKey(0), x)
    variables = {
        "params": {
            "linear": {"kernel": params["linear"]["w"], "bias": params["linear"]["b"]},
            "block": {"linear": {"kernel": params["block/linear"]["w"], "bias": params["block/linear"]["b"]}},
            "block_1": {"linear": {"kernel": params["block_1/linear"]["w"], "bias": params["block_1/linear"]["b"]}},
            "linear_1": {"kernel": params["linear_1"]["w"], "bias": params["linear_1"]["b"]},
        }
    }
    assert jax.tree.structure(variables) == jax.tree.structure(after.net.init(jax.random.PRNGKey(0), x))
    ours, theirs = np.asarray(after.net.apply(variables, x)), np.asarray(before.net.apply(params, x))
    np.testing.assert_array_equal(ours, theirs)

    # Without the interceptor (a pass-through in its place) both outputs move: it was not vacuous.
    def plain(next_fun, args, kwargs, context):  # type: ignore[no-untyped-def]
        return next_fun(*args, **kwargs)

    before.halve_blocks = plain
    after.halve_blocks = plain
    plain_ours, plain_theirs = np.asarray(after.net.apply(variables, x)), np.asarray(before.net.apply(params, x))
    np.testing.assert_array_equal(plain_ours, plain_theirs)
    assert not np.array_equal(plain_ours, ours)


def test_both_libraries_give_the_context_fields_the_rewrite_reads() -> None:
    """method_name and orig_method mean the same; Haiku also intercepts construction (so the guard must name a method)."""
    seen: dict[str, list[tuple[str, bool]]] = {"haiku": [], "flax": []}

    def record(library: str):  # type: ignore[no-untyped-def]
        def interceptor(next_fun, args, kwargs, context):  # type: ignore[no-untyped-def]
            seen[library].append((context.method_name, callable(context.orig_method)))
            return next_fun(*args, **kwargs)

        return interceptor

    class HkBlock(hk.Module):
        def __call__(self, x):
            return x * 2

    class FxBlock(nn.Module):
        def __call__(self, x):
            return x * 2

    def forward(x):
        with hk.intercept_methods(record("haiku")):
            return HkBlock()(x)

    hk.transform(forward).apply({}, None, jnp.ones([2]))
    with nn.intercept_methods(record("flax")):
        FxBlock().apply({}, jnp.ones([2]))
    assert seen == {"haiku": [("__init__", True), ("__call__", True)], "flax": [("__call__", True)]}


def _migrate(prelude: str, block: str) -> tuple[str, list[str]]:
    source = (
        "import haiku as hk\nimport jax\nimport jax.numpy as jnp\n\n\n"
        "class Block(hk.Module):\n    def __call__(self, x):\n        return hk.Linear(4)(x)\n\n\n"
        + textwrap.dedent(prelude)
        + "\n\nclass M(hk.Module):\n    def __call__(self, x):\n"
        + textwrap.indent(textwrap.dedent(block), "        ")
        + "\n\n\nnet = hk.without_apply_rng(hk.transform(lambda x: M()(x)))\n"
    )
    result = migrate_source(source.encode(), "case.py")
    assert migrate_source(result.source, "case.py").source == result.source
    return result.source.decode(), [t.construct for t in result.todos]


BLOCK = "with hk.intercept_methods(i):\n    y = Block()(x)\nreturn y"


def test_a_positive_guard_is_rewritten_too() -> None:
    prelude = (
        "def i(next_fun, args, kwargs, context):\n"
        "    if type(context.module) is Block and context.method_name == '__call__':\n"
        "        return context.orig_method(*args, **kwargs) + 1.0\n"
        "    return next_fun(*args, **kwargs)\n"
    )
    out, todos = _migrate(prelude, BLOCK)
    assert todos == [] and "with nn.intercept_methods(i):" in out


@pytest.mark.parametrize(
    "prelude",
    [
        # no method clause: Linen would also intercept Block.setup and any other method
        "def i(next_fun, args, kwargs, context):\n    if not isinstance(context.module, Block):\n        return next_fun(*args, **kwargs)\n    return next_fun(*args, **kwargs) * 2\n",
        # a Haiku layer: Linen's nn.Dense is another class, with other arguments
        "def i(next_fun, args, kwargs, context):\n    if not isinstance(context.module, hk.Linear) or context.method_name != '__call__':\n        return next_fun(*args, **kwargs)\n    return next_fun(*args, **kwargs) * 2\n",
        # reads context.module (Haiku's module_name is a path)
        "def i(next_fun, args, kwargs, context):\n    if not isinstance(context.module, Block) or context.method_name != '__call__':\n        return next_fun(*args, **kwargs)\n    print(context.module.module_name)\n    return next_fun(*args, **kwargs)\n",
        # Haiku also intercepts construction; Linen never does
        "def i(next_fun, args, kwargs, context):\n    if not isinstance(context.module, Block) or context.method_name != '__init__':\n        return next_fun(*args, **kwargs)\n    return next_fun(*args, **kwargs)\n",
        # a method Block does not define (inherited, or a name Linen would not call)
        "def i(next_fun, args, kwargs, context):\n    if not isinstance(context.module, Block) or context.method_name != 'encode':\n        return next_fun(*args, **kwargs)\n    return next_fun(*args, **kwargs) * 2\n",
        # every call changed
        "def i(next_fun, args, kwargs, context):\n    return next_fun(*args, **kwargs) * 2\n",
    ],
)
def test_other_interceptors_stay_todo(prelude: str) -> None:
    out, todos = _migrate(prelude, BLOCK)
    assert todos.count("hk.intercept_methods") == 1
    assert "with hk.intercept_methods(i):" in out
