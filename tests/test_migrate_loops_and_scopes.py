"""hk.fori_loop / hk.while_loop (lifted_loops.py) and the scoping APIs: what migrates exactly, what stays TODO.

Rewrites are checked on small programs (the fragment the output must contain,
and a second migration must change nothing); the exact ones are then run: the
Haiku original and the migrated Flax program, Haiku's parameters mapped onto
the Flax tree, outputs bit-identical on CPU.
"""

from __future__ import annotations

import importlib.util
import sys
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flaxify.equivalence import compare, parse_spec
from flaxify.migrate import migrate_source

from flaxify.cli import main

HEADER = "import haiku as hk\nimport jax\nimport jax.numpy as jnp\n\n\n"


def _module(body: str) -> str:
    """A transformed module class whose __call__ runs ``body``."""
    return (
        HEADER
        + "class M(hk.Module):\n    def __call__(self, x):\n"
        + textwrap.indent(textwrap.dedent(body), "        ")
        + "\n\nnet = hk.without_apply_rng(hk.transform(lambda x: M()(x)))\n"
    )


def _migrate(source: str) -> tuple[str, list[str]]:
    result = migrate_source(source.encode(), "case.py")
    again = migrate_source(result.source, "case.py")
    assert not again.changed, again.source.decode()
    return result.source.decode(), [t.construct for t in result.todos]


LOOP_REWRITES = [
    # Pure functions (their own locals and jax/numpy/builtins only): the jax.lax loop itself.
    ("return hk.fori_loop(0, 3, lambda i, v: v * 2.0 + i, x)", "return jax.lax.fori_loop(0, 3, lambda i, v: v * 2.0 + i, x)"),
    (
        "def step(i, v):\n    k = [j for j in range(2)]\n    return jnp.tanh(v) * len(k) + i\nreturn hk.fori_loop(0, 3, step, x)",
        "return jax.lax.fori_loop(0, 3, step, x)",
    ),
    (
        "return hk.while_loop(lambda v: v.sum() < 9.0, lambda v: v + 1.0, x)",
        "return jax.lax.while_loop(lambda v: v.sum() < 9.0, lambda v: v + 1.0, x)",
    ),
    # A module (or any closure) in the body: the lifted forms.
    ("lin = hk.Linear(4)\nreturn hk.fori_loop(0, 3, lambda i, v: lin(v), x)", "return fori_loop(self, 0, 3, lambda i, v: lin(v), x)"),
    ("scale = x.mean()\nreturn hk.fori_loop(0, 3, lambda i, v: v * scale, x)", "return fori_loop(self, 0, 3, lambda i, v: v * scale, x)"),
    (
        "lin = hk.Linear(4)\nreturn hk.fori_loop(lower=0, upper=3, body_fun=lambda i, v: lin(v), init_val=x)",
        "return fori_loop(self, 0, 3, lambda i, v: lin(v), x)",
    ),
    (
        "lin = hk.Linear(4)\nreturn hk.while_loop(lambda v: v.sum() < 9.0, lin, x)",
        "return nn.while_loop(lambda _, val: (lambda v: v.sum() < 9.0)(val), lambda _, val: lin(val), self, x)",
    ),
]


@pytest.mark.parametrize(("body", "fragment"), LOOP_REWRITES)
def test_loop_rewrites(body: str, fragment: str) -> None:
    out, todos = _migrate(_module(body))
    assert fragment in out, out
    assert todos == []
    # The helper is emitted exactly when the output calls it.
    assert out.count("def fori_loop(") == (1 if "fori_loop(self" in out else 0)


LOOP_TODOS = [
    ('def step(i, v):\n    n = hk.get_state("n", [], init=jnp.zeros)\n    hk.set_state("n", n + 1)\n    return v\nreturn hk.fori_loop(0, 3, step, x)', "hk.fori_loop"),
    ("return hk.while_loop(lambda v: v.sum() < 9.0, lambda v: hk.dropout(hk.next_rng_key(), 0.5, v), x)", "hk.while_loop"),
]


@pytest.mark.parametrize(("body", "construct"), LOOP_TODOS)
def test_loops_threading_state_or_rng_stay_todo(body: str, construct: str) -> None:
    out, todos = _migrate(_module(body))
    assert construct in todos
    assert construct + "(" in out  # the call is left as it was, under the TODO
    assert "carry_variables='state'" in out


# -- running the migrated code ----------------------------------------------------

TRACED_BOUND = HEADER + textwrap.dedent(
    """\
    class Solver(hk.Module):
        def __call__(self, x, n):
            lin = hk.Linear(4)
            return hk.fori_loop(0, n, lambda i, h: jnp.tanh(lin(h)) * (i + 1), x)


    net = hk.without_apply_rng(hk.transform(lambda x, n: Solver()(x, n)))
    """
)


def _load(path: Path, name: str):  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_fori_loop_with_traced_bounds_matches_haiku(tmp_path: Path) -> None:
    """A traced trip count takes the helper's nn.while_loop branch; forward only (no reverse mode, as in Haiku)."""
    (tmp_path / "hk_solver.py").write_text(TRACED_BOUND)
    (tmp_path / "fx_solver.py").write_bytes(migrate_source(TRACED_BOUND.encode(), "solver.py").source)
    haiku_net, flax_net = _load(tmp_path / "hk_solver.py", "hk_solver").net, _load(tmp_path / "fx_solver.py", "fx_solver").net
    x = jnp.linspace(-1.0, 1.0, 8, dtype=jnp.float32).reshape(2, 4)
    params = haiku_net.init(jax.random.key(0), x, 3)
    variables = {"params": {"solver": {"linear": {"kernel": params["solver/linear"]["w"], "bias": params["solver/linear"]["b"]}}}}
    assert jax.tree.structure(variables) == jax.tree.structure(flax_net.init(jax.random.key(0), x, 3))
    with jax.default_matmul_precision("highest"):
        for n in (0, 1, 4):
            want = jax.jit(haiku_net.apply)(params, x, jnp.int32(n))
            got = jax.jit(flax_net.apply)(variables, x, jnp.int32(n))
            np.testing.assert_array_equal(np.asarray(want), np.asarray(got))


ZOO_PROGRAM = HEADER + textwrap.dedent(
    '''\
    class Block(hk.Module):
        """A residual block applied repeatedly (weights shared across iterations)."""

        def __call__(self, h):
            return h + jax.nn.gelu(hk.Linear(8)(hk.LayerNorm(-1, True, True)(h)))


    class IterativeRefiner(hk.Module):
        def __init__(self, steps, name=None):
            super().__init__(name=name)
            self.steps = steps

        def __call__(self, x):
            h = hk.Linear(8, name="embed")(x)
            block = Block()
            h = hk.fori_loop(0, self.steps, lambda i, v: block(v), h)
            h = hk.fori_loop(0, 2, lambda i, v: v / (1.0 + i), h)
            return hk.Linear(3, name="head")(h)


    def forward(x):
        return IterativeRefiner(steps=4)(x)


    net = hk.without_apply_rng(hk.transform(forward))
    '''
)


def test_zoo_style_loop_program_migrates_bit_exact(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """Migrate a program it has never seen with the CLI, then `flaxify check` it against the original."""
    (tmp_path / "haiku").mkdir()
    (tmp_path / "haiku" / "model.py").write_text(ZOO_PROGRAM)
    assert main(["migrate", str(tmp_path / "haiku"), "-o", str(tmp_path / "flax")]) == 0, capsys.readouterr().err
    migrated = (tmp_path / "flax" / "model.py").read_text()
    assert "TODO(flaxify)" not in migrated and "haiku" not in migrated
    haiku_net = _load(tmp_path / "haiku" / "model.py", "zoo_loops_hk").net
    flax_net = _load(tmp_path / "flax" / "model.py", "zoo_loops_fx").net
    report = compare(haiku_net, flax_net, [parse_spec("f32[3,5]")], devices="cpu", init_seeds=0)
    assert report.equivalent, report.format_table()
    assert report.bitexact, report.format_table()
