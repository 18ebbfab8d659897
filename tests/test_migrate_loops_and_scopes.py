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

from flaxify.cli import main
from flaxify.equivalence import compare, parse_spec
from flaxify.migrate import migrate_source

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
    # (loops over such functions in a module method are lifted: tests/test_migrate_loops_state.py)
    ('def step(i, v):\n    n = hk.get_state("n", [], init=jnp.zeros)\n    hk.set_state("n", n + 1)\n    return v\nreturn hk.fori_loop(0, 3, step, x) + hk.fori_loop(0, 2, step, x)', "hk.fori_loop"),
    ("return hk.while_loop(lambda v: jax.random.uniform(hk.next_rng_key()) < 0.5, lambda v: hk.dropout(hk.next_rng_key(), 0.5, v), x)", "hk.while_loop"),
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


# -- hk.mixed_precision (precision.py) ----------------------------------------------

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "migrate"


@pytest.fixture
def linear_policy_cleared():  # type: ignore[no-untyped-def]
    """Haiku policies are process-wide: whatever a test sets on hk.Linear is cleared afterwards."""
    import haiku as hk

    yield
    hk.mixed_precision.clear_policy(hk.Linear)


def test_linear_policy_fixture_is_bit_exact(linear_policy_cleared) -> None:  # type: ignore[no-untyped-def]
    before = FIXTURES / "precision" / "linear_policy.before.py"
    haiku_net = _load(before, "precision_hk").net  # sets the policy
    flax_net = _load(before.with_name("linear_policy.after.py"), "precision_fx").net
    report = compare(haiku_net, flax_net, [parse_spec("f32[2,8]")], devices="cpu", init_seeds=0)
    assert report.equivalent, report.format_table()
    assert report.bitexact, report.format_table()


def _policy_program(policy: str, cls: str = "hk.Linear", layers: str = "hk.Linear(4)(x)") -> str:
    return (
        "import haiku as hk\nimport jax.numpy as jnp\nimport jmp\n\n"
        f"hk.mixed_precision.set_policy({cls}, {policy})\n\n\n"
        f"class M(hk.Module):\n    def __call__(self, x):\n        return {layers}\n\n\n"
        "net = hk.transform(lambda x: M()(x))\n"
    )


POLICIES = [
    ('jmp.get_policy("p=f32,c=bf16")', "dtype=jnp.bfloat16, param_dtype=jnp.float32"),
    ('jmp.get_policy("bf16")', "dtype=jnp.bfloat16, param_dtype=jnp.bfloat16"),
    ("jmp.Policy(param_dtype=jnp.bfloat16, compute_dtype=jnp.float32, output_dtype=jnp.float32)", "dtype=jnp.float32, param_dtype=jnp.bfloat16"),
    ("jmp.Policy(jnp.float32, jnp.float16, jnp.float16)", "dtype=jnp.float16, param_dtype=jnp.float32"),
]


@pytest.mark.parametrize(("policy", "fragment"), POLICIES)
def test_linear_policies_become_dense_dtypes(policy: str, fragment: str) -> None:
    out, todos = _migrate(_policy_program(policy))
    assert fragment in out and "set_policy" not in out and "jmp" not in out, out
    assert todos == []


POLICY_TODOS = [
    (_policy_program('jmp.get_policy("p=f32,c=bf16,o=f32")', layers="(lin := hk.Linear(4))(x)"), "bound to a name"),
    (_policy_program('jmp.get_policy("half")'), "backend-dependent"),
    (_policy_program('jmp.get_policy("c=bf16")', cls="hk.LayerNorm", layers="hk.LayerNorm(-1, True, True)(x)"), "reduces in float32"),
    (_policy_program('jmp.get_policy("c=bf16")', layers="hk.nets.MLP([4, 4])(x)"), "emitted helpers: MLP"),
    (_policy_program('jmp.get_policy("c=bf16")', layers="x * 2.0"), "builds no hk.Linear"),
]


@pytest.mark.parametrize(("source", "reason"), POLICY_TODOS)
def test_other_policies_stay_todo_saying_why(source: str, reason: str) -> None:
    result = migrate_source(source.encode(), "case.py")
    todos = [t for t in result.todos if t.construct == "hk.mixed_precision.set_policy"]
    assert len(todos) == 1 and reason in todos[0].reason, result.todos
    assert "hk.mixed_precision.set_policy(" in result.source.decode()
    assert "param_dtype=jnp" not in result.source.decode()
    assert not migrate_source(result.source, "case.py").changed


# -- hk.custom_getter (custom_getters.py) and the TODO-only scoping APIs ----------------------

CAST = "def to_bf16(next_getter, value, context):\n    return next_getter(value.astype(jnp.bfloat16))\n\n\n"


def _getter_program(block: str, after: str = "return y", before: str = "") -> str:
    """A module whose __call__ runs ``before``, then ``block`` under ``hk.custom_getter(to_bf16)``, then ``after``."""
    return (
        HEADER
        + CAST
        + "class M(hk.Module):\n    def __call__(self, x):\n"
        + (f"        {before}\n" if before else "")
        + "        with hk.custom_getter(to_bf16):\n"
        + textwrap.indent(textwrap.dedent(block), "            ")
        + f"\n        {after}\n\n\nnet = hk.transform(lambda x: M()(x))\n"
    )


def test_cast_getter_becomes_map_variables() -> None:
    out, todos = _migrate(_getter_program("y = hk.Linear(4, with_bias=False)(x)"))
    assert "hk.custom_getter" not in out and "with " not in out
    assert 'nn.map_variables(nn.Dense, "params", trans_in_fn=lambda vs: jax.tree.map(lambda v: v.astype(jnp.bfloat16), vs)' in out
    assert "trans_out_fn=lambda vs: jax.tree.map(lambda v: v.astype(jnp.float32), vs), init=True)(4, use_bias=False" in out
    assert todos == []


def test_cast_getter_on_a_biased_layer_notes_the_bias_gradient() -> None:
    out, todos = _migrate(_getter_program("y = hk.Linear(4)(x)"))
    assert "nn.map_variables(nn.Dense" in out and todos == ["hk.custom_getter"]
    assert "bias gradient is summed in jnp.bfloat16" in out


GETTER_REFUSED = [
    # The getter reaches a module built outside the block (Haiku casts at read time).
    ("lin = hk.Linear(4)", "y = lin(x)", "return y"),
    # A layer built in the block is called after it, where Haiku's getter no longer runs.
    ("", "lin = hk.Linear(4)\ny = lin(x)", "return lin(y)"),
    # Deferred code in the block.
    ("", "f = lambda v: hk.Linear(4)(v)\ny = f(x)", "return y"),
]


@pytest.mark.parametrize(("before", "block", "after"), GETTER_REFUSED)
def test_other_getter_uses_stay_todo(before: str, block: str, after: str) -> None:
    out, todos = _migrate(_getter_program(block, after, before))
    assert "hk.custom_getter" in todos and "map_variables(" in out.split("TODO(flaxify): hk.custom_getter", 1)[1]
    assert "nn.map_variables(nn.Dense" not in out


def test_getter_that_is_not_a_plain_cast_stays_todo() -> None:
    source = _getter_program("y = hk.Linear(4)(x)").replace("value.astype(jnp.bfloat16)", "value * 2.0")
    out, todos = _migrate(source)
    assert todos == ["hk.custom_getter"] and "map_variables(nn.Dense" not in out


@pytest.mark.parametrize(
    ("source", "construct", "fragment"),
    [
        (_module('with hk.name_scope("a/b"):\n    return hk.Linear(4)(x)'), "hk.name_scope", "one NameScope per part"),
        (_module('with hk.experimental.name_scope("s_1"):\n    for _ in range(2):\n        x = hk.Linear(4)(x)\nreturn x'), "hk.experimental.name_scope", "stays one flat key"),
        (_module("with hk.custom_creator(lambda nc, s, d, i, c: nc(s, d, i)):\n    y = hk.Linear(4)(x)\nreturn y"), "hk.custom_creator", "trans_out_fn=fn"),
        (_module("with hk.intercept_methods(lambda f, a, k, c: f(*a)):\n    y = hk.Linear(4)(x)\nreturn y"), "hk.intercept_methods", "nn.intercept_methods(interceptor)"),
    ],
)
def test_scoping_apis_stay_todo_with_the_recipe(source: str, construct: str, fragment: str) -> None:
    out, todos = _migrate(source)
    assert construct in todos
    assert fragment in out


def test_a_linear_policy_applies_next_to_a_policy_that_stays_todo() -> None:
    source = _policy_program('jmp.get_policy("c=bf16")', layers="hk.LayerNorm(-1, True, True)(hk.Linear(4)(x))").replace(
        "\n\n\nclass M", '\nhk.mixed_precision.set_policy(hk.LayerNorm, jmp.get_policy("bf16"))\n\n\nclass M'
    )
    out, todos = _migrate(source)
    assert todos == ["hk.mixed_precision.set_policy"]
    assert "dtype=jnp.bfloat16, param_dtype=jnp.float32" in out
    assert "set_policy(hk.Linear" not in out and "set_policy(hk.LayerNorm" in out


def test_name_scope_block_becomes_a_scope_submodule() -> None:
    out, todos = _migrate(_module('x = hk.Linear(4)(x)\nwith hk.name_scope("s"):\n    x = hk.Linear(4)(x)\n    y = x * 2.0\nreturn hk.Linear(4)(y)'))
    assert todos == []
    assert "def _name_scope_s(scope, x):" in out and "return x, y" in out
    assert 'x, y = NameScope(_name_scope_s, name="s")(x)' in out
    assert out.count('name="linear"') == 2 and 'name="linear_1"' in out  # counters restart in the scope
    assert out.count("class NameScope(nn.Module)") == 1


def test_name_scope_outside_module_methods_stays_todo() -> None:
    source = HEADER + 'def helper(x):\n    with hk.name_scope("s"):\n        x = hk.Linear(4)(x)\n    return x\n'
    out, todos = _migrate(source)
    assert todos and todos[0] == "hk.name_scope" and "NameScope(_name_scope" not in out


SCOPES_PROGRAM = HEADER + textwrap.dedent(
    '''\
    def half_params(next_getter, value, context):
        return next_getter(value.astype(jnp.bfloat16))


    class MixerBlock(hk.Module):
        """Token mixing in a name scope with bfloat16 projection weights, then a shared refinement loop."""

        def __call__(self, x):
            with hk.name_scope("mixing"):
                norm = hk.LayerNorm(-1, True, True)
                x = x + hk.Linear(x.shape[-1])(norm(x))
                scale = hk.get_parameter("scale", [x.shape[-1]], init=jnp.ones)
            with hk.custom_getter(half_params):
                h = hk.Linear(16, with_bias=False, name="up")(x)
                h = hk.Linear(x.shape[-1], with_bias=False, name="down")(jax.nn.gelu(h))
            refine = hk.Linear(x.shape[-1], name="refine")
            y = hk.fori_loop(0, 2, lambda i, v: v + 0.5 * jnp.tanh(refine(v)), x + h.astype(x.dtype))
            return norm(y) * scale


    def forward(x):
        return MixerBlock()(x)


    net = hk.without_apply_rng(hk.transform(forward))
    '''
)


def test_zoo_style_scopes_program_migrates_bit_exact(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """name_scope, a casting custom getter and a module fori_loop together, migrated with the CLI and checked."""
    (tmp_path / "haiku").mkdir()
    (tmp_path / "haiku" / "model.py").write_text(SCOPES_PROGRAM)
    assert main(["migrate", str(tmp_path / "haiku"), "-o", str(tmp_path / "flax")]) == 0, capsys.readouterr().err
    migrated = (tmp_path / "flax" / "model.py").read_text()
    assert "TODO(flaxify)" not in migrated and "haiku" not in migrated, migrated
    haiku_net = _load(tmp_path / "haiku" / "model.py", "zoo_scopes_hk").net
    flax_net = _load(tmp_path / "flax" / "model.py", "zoo_scopes_fx").net
    report = compare(haiku_net, flax_net, [parse_spec("f32[2,3,8]")], devices="cpu", init_seeds=0)
    assert report.equivalent, report.format_table()
    assert report.bitexact, report.format_table()
