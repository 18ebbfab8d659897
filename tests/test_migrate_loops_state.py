"""hk.fori_loop / hk.while_loop bodies that use Haiku state or RNG keys (lifted_loops.py).

The loop functions are handed the lifted module (``def step(self, i, h)``);
Linen carries the "state" collection through the loop and gives each step fresh
"dropout" keys. State-only loops must equal Haiku bit for bit over several apply
calls (the state fed back each time, as in a training loop); RNG loops must draw
a different key at every step. Loops the rewrite cannot lift keep a TODO and the
user's Haiku code exactly as it was.
"""

from __future__ import annotations

import importlib.util
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flaxify.equivalence import map_params
from flaxify.migrate import migrate_source

LIFTED = Path(__file__).resolve().parent.parent / "fixtures" / "migrate" / "lifted"
HEADER = "import haiku as hk\nimport jax\nimport jax.numpy as jnp\n\n\n"


def _load_file(path: Path, label: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"_loops_state_{label}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _load_text(source: str, tmp_path: Path, label: str) -> ModuleType:
    path = tmp_path / f"{label}.py"
    path.write_text(source)
    return _load_file(path, label)


def _migrate(source: str) -> tuple[str, list[str]]:
    result = migrate_source(source.encode(), "case.py")
    again = migrate_source(result.source, "case.py")
    assert not again.changed, again.source.decode()
    return result.source.decode(), [t.construct for t in result.todos]


def _assert_trees_equal(actual, expected) -> None:  # type: ignore[no-untyped-def]
    assert jax.tree.structure(actual) == jax.tree.structure(expected)
    for a, e in zip(jax.tree.leaves(actual), jax.tree.leaves(expected), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(e))


def _mapped(hk_params, hk_state, template):  # type: ignore[no-untyped-def]
    return map_params(hk_params, hk_state, template, root_is_module=False)


# -- state: a training-loop style run, state fed back each call ----------------------------------------


def test_loop_state_fixture_matches_haiku_over_three_calls() -> None:
    """Outputs and every state entry (counters, running sums) equal Haiku's at init and after each of 3 calls."""
    haiku_net = _load_file(LIFTED / "loop_state.before.py", "hk").net
    flax_net = _load_file(LIFTED / "loop_state.after.py", "fx").net
    xs = jax.random.normal(jax.random.PRNGKey(1), (3, 2, 4))
    params, state = haiku_net.init(jax.random.PRNGKey(0), xs[0])
    variables = _mapped(params, state, flax_net.init(jax.random.PRNGKey(0), xs[0]))
    # Haiku's init returns the state as the body created it (no loop updates): so must Linen's.
    _assert_trees_equal(flax_net.init(jax.random.PRNGKey(0), xs[0])["state"], variables["state"])
    hk_apply, fx_apply = jax.jit(haiku_net.apply), jax.jit(lambda v, x: flax_net.apply(v, x, mutable=["state"]))
    for x in xs:
        expected, state = hk_apply(params, state, None, x)
        out, mutated = fx_apply(variables, x)
        variables = {**variables, **mutated}
        np.testing.assert_array_equal(np.asarray(out), np.asarray(expected))
        _assert_trees_equal(variables["state"], _mapped(params, state, variables)["state"])
    assert int(state["refine"]["steps"]) == 9  # 3 calls x 3 steps: the counter really is carried
    assert int(state["solve"]["iterations"]) == 12  # 6 + 6 + 0: cond_fun read the state from before each loop
    np.testing.assert_array_equal(np.asarray(state["accumulate"]["total"]), np.asarray(xs.sum((0, 1))))


TRACED_BOUND = HEADER + textwrap.dedent(
    """\
    class Count(hk.Module):
        def __call__(self, x, n):
            lin = hk.Linear(4)

            def step(i, h):
                total = hk.get_state("total", [], jnp.int32, init=jnp.zeros)
                hk.set_state("total", total + i)
                return jnp.tanh(lin(h))

            return hk.fori_loop(0, n, step, x)


    net = hk.transform_with_state(lambda x, n: Count()(x, n))
    """
)


def test_fori_loop_with_traced_bound_carries_state(tmp_path: Path) -> None:
    """A traced trip count takes the helper's nn.while_loop branch, with the state carried there too."""
    out, todos = _migrate(TRACED_BOUND)
    assert todos == [] and "stateful_fori_loop(self, 0, n, step, x)" in out
    haiku_net = _load_text(TRACED_BOUND, tmp_path, "traced_hk").net
    flax_net = _load_text(out, tmp_path, "traced_fx").net
    x, n = jnp.ones((2, 4)), jnp.asarray(4)
    params, state = haiku_net.init(jax.random.PRNGKey(0), x, n)
    variables = _mapped(params, state, flax_net.init(jax.random.PRNGKey(0), x, n))
    for _ in range(2):
        expected, state = jax.jit(haiku_net.apply)(params, state, None, x, n)
        got, mutated = jax.jit(lambda v, x, n: flax_net.apply(v, x, n, mutable=["state"]))(variables, x, n)
        variables = {**variables, **mutated}
        np.testing.assert_array_equal(np.asarray(got), np.asarray(expected))
        _assert_trees_equal(variables["state"], _mapped(params, state, variables)["state"])
    assert int(state["count"]["total"]) == 2 * (0 + 1 + 2 + 3)


SETUP_STYLE = HEADER + textwrap.dedent(
    """\
    class Refine(hk.Module):
        def __init__(self, steps, name=None):
            super().__init__(name=name)
            self.steps = steps
            self.proj = hk.Linear(4)

        def __call__(self, x):
            def step(i, h):
                count = hk.get_state("count", [], jnp.int32, init=jnp.zeros)
                hk.set_state("count", count + 1)
                return jnp.tanh(self.proj(h)) * (count + 1)

            return hk.fori_loop(0, self.steps, step, x)


    net = hk.transform_with_state(lambda x: Refine(3)(x))
    """
)


def test_body_using_a_layer_built_in_init_carries_state(tmp_path: Path) -> None:
    """The body reads self.proj and self.steps: on the lifted module they are the same layer and field (setup())."""
    out, todos = _migrate(SETUP_STYLE)
    assert todos == [] and "def step(self, i, h):" in out and "self.proj(h)" in out
    haiku_net = _load_text(SETUP_STYLE, tmp_path, "setup_hk").net
    flax_net = _load_text(out, tmp_path, "setup_fx").net
    x = jnp.ones((2, 4))
    params, state = haiku_net.init(jax.random.PRNGKey(0), x)
    variables = _mapped(params, state, flax_net.init(jax.random.PRNGKey(0), x))
    for _ in range(2):
        expected, state = haiku_net.apply(params, state, None, x)
        got, mutated = flax_net.apply(variables, x, mutable=["state"])
        variables = {**variables, **mutated}
        np.testing.assert_array_equal(np.asarray(got), np.asarray(expected))
        _assert_trees_equal(variables["state"], _mapped(params, state, variables)["state"])
    assert int(state["refine"]["count"]) == 6


# -- RNG: every step draws a fresh key -------------------------------------------------------------------

DRAWS = HEADER + textwrap.dedent(
    """\
    class Draws(hk.Module):
        def __call__(self, x):
            def draw(i, v):
                return v.at[i].set(jax.random.uniform(hk.next_rng_key(), ()))

            by_def = hk.fori_loop(0, 4, draw, x)
            by_lambda = hk.fori_loop(0, 4, lambda i, v: v.at[i].set(jax.random.uniform(hk.next_rng_key(), ())), x)

            def sample(c):
                i, v = c
                return i + 1, v.at[i].set(jax.random.uniform(hk.next_rng_key(), ()))

            def scanned(c, i):
                return c, jax.random.uniform(hk.next_rng_key(), ())

            _, by_scan = hk.scan(scanned, 0.0, jnp.arange(4))
            by_map = hk.map(lambda i: jax.random.uniform(hk.next_rng_key(), ()), jnp.arange(4))
            if hk.running_init():
                return by_def, by_lambda, by_scan, by_map, sample((0, x))[1]
            _, sampled = hk.while_loop(lambda c: c[0] < 4, sample, (0, x))
            return by_def, by_lambda, by_scan, by_map, sampled


    net = hk.transform(lambda x: Draws()(x))
    """
)


def test_each_loop_step_draws_a_fresh_key(tmp_path: Path) -> None:
    """Step i draws number i: four different numbers per loop (the same key every step would repeat one).

    Covers hk.fori_loop (a def and a lambda), hk.scan, hk.map and hk.while_loop.
    """
    out, todos = _migrate(DRAWS)
    assert todos == []
    assert "stateful_fori_loop(self, 0, 4, draw, x)" in out
    assert "stateful_scan(self, scanned, 0.0, jnp.arange(4))" in out
    assert "stateful_scan(self, lambda self, carry, i: (carry, jax.random.uniform(self.make_rng(" in out
    assert 'nn.while_loop(lambda _, val: (lambda c: c[0] < 4)(val), sample, self, (0, x), carry_variables="state"' in out
    flax_net = _load_text(out, tmp_path, "draws_fx").net
    x = jnp.zeros(4)
    variables = flax_net.init(jax.random.PRNGKey(0), x)
    apply = jax.jit(lambda key: flax_net.apply(variables, x, rngs={"dropout": key}))
    outputs = apply(jax.random.PRNGKey(3))
    for drawn in outputs:
        values = np.asarray(drawn)
        assert len(set(values.tolist())) == 4, values
        assert ((values > 0) & (values < 1)).all()
    np.testing.assert_array_equal(np.asarray(outputs[0]), np.asarray(apply(jax.random.PRNGKey(3))[0]))
    assert not np.array_equal(np.asarray(outputs[0]), np.asarray(apply(jax.random.PRNGKey(4))[0]))
    # Haiku, for reference, draws four different numbers too.
    haiku_net = _load_text(DRAWS, tmp_path, "draws_hk").net
    params = haiku_net.init(jax.random.PRNGKey(0), x)
    assert len(set(np.asarray(haiku_net.apply(params, jax.random.PRNGKey(3), x)[0]).tolist())) == 4


VMAP_DRAWS = HEADER + textwrap.dedent(
    """\
    class Draws(hk.Module):
        def __call__(self, x):
            def draw(row):
                return row + jax.random.uniform(hk.next_rng_key(), ())

            split = hk.vmap(draw, split_rng=True)(x)
            shared = hk.vmap(lambda row: row + jax.random.uniform(hk.next_rng_key(), ()), split_rng=False)(x)
            return split, shared


    net = hk.transform(lambda x: Draws()(x))
    """
)


def test_vmap_split_rng_draws_a_key_per_element(tmp_path: Path) -> None:
    """hk.vmap(split_rng=True): a different key per element; split_rng=False: one key for all, as in Haiku."""
    out, todos = _migrate(VMAP_DRAWS)
    assert todos == [] and "nn.vmap(draw, " in out
    x = jnp.zeros(4)
    for source, label in ((VMAP_DRAWS, "vmap_hk"), (out, "vmap_fx")):
        net = _load_text(source, tmp_path, label).net
        if label == "vmap_hk":
            split, shared = net.apply(net.init(jax.random.PRNGKey(0), x), jax.random.PRNGKey(3), x)
        else:
            split, shared = net.apply(net.init(jax.random.PRNGKey(0), x), x, rngs={"dropout": jax.random.PRNGKey(3)})
        assert len(set(np.asarray(split).tolist())) == 4, (label, split)
        assert len(set(np.asarray(shared).tolist())) == 1, (label, shared)


def test_dropout_loop_fixture_drops_in_training(tmp_path: Path) -> None:
    """The RNG fixture in training: the noise and dropout run (about a quarter zeroed), keyed by the dropout stream."""
    flax_net = _load_file(LIFTED / "loop_rng.after.py", "rng_fx").net
    x = jnp.ones((64, 4))
    variables = flax_net.init(jax.random.PRNGKey(0), x, False)
    evaluation = flax_net.apply(variables, x, False)
    training = jax.jit(lambda key: flax_net.apply(variables, x, True, rngs={"dropout": key}))(jax.random.PRNGKey(5))
    zeros = float((np.asarray(training) == 0).mean())
    assert 0.3 < zeros < 0.6, zeros  # two dropout steps at 0.25: 1 - 0.75**2 = 0.44 of the entries
    assert not np.allclose(np.asarray(training), np.asarray(evaluation) / 0.75**2)


# -- what stays TODO, with the Haiku code untouched --------------------------------------------------------

STAYS_TODO = [
    (  # a transformed function: no module method to lift
        ("def f(x):\n    def step(i, v):\n        n = hk.get_state('n', [], init=jnp.zeros)\n        hk.set_state('n', n + 1)\n"
        "        return v\n    return hk.fori_loop(0, 3, step, x)\n\n\nnet = hk.transform_with_state(f)\n"),
        "directly in an hk.Module method",
    ),
    (  # Haiku itself raises for state updates and keys in cond_fun
        ("class M(hk.Module):\n    def __call__(self, x):\n"
        "        return hk.while_loop(lambda v: jax.random.uniform(hk.next_rng_key()) < 0.5, lambda v: v + 1.0, x)\n"),
        "cond_fun",
    ),
    (  # the def is kept in a list: handing it the module would change what the list holds
        ("class M(hk.Module):\n    def __call__(self, x):\n        def step(i, v):\n"
        "            return v + jax.random.normal(hk.next_rng_key(), v.shape)\n"
        "        steps = [step]\n        return hk.fori_loop(0, 3, steps[0], x) + hk.fori_loop(0, 3, step, x)\n"),
        "used other than called",
    ),
    (
        ("class M(hk.Module):\n    def __call__(self, x):\n        def step(i, v):\n"
        "            return v + jax.random.normal(hk.next_rng_key(), v.shape)\n"
        "        return hk.fori_loop(0, 3, step, x) + hk.fori_loop(0, 2, step, x)\n"),
        "more than one loop",
    ),
]


@pytest.mark.parametrize(("body", "reason"), STAYS_TODO, ids=["transformed_function", "cond_fun", "def_in_list", "two_loops"])
def test_loops_that_cannot_be_lifted_keep_todo_and_code(body: str, reason: str) -> None:
    out, todos = _migrate(HEADER + body)
    assert {"hk.fori_loop", "hk.while_loop", "hk.scan"} & set(todos)
    todo = next(line for line in out.splitlines() if "TODO(flaxify): hk." in line and ("_loop:" in line or "scan:" in line))
    assert reason in todo, todo
    assert "self=self" not in out and "stateful_fori_loop" not in out  # nothing half-marked, no unused helper
    for line in body.splitlines():
        if "def step" in line:
            assert line.strip() in out  # the def keeps its parameters
