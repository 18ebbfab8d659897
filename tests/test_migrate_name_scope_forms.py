"""hk.name_scope forms beyond one flat block: "a/b" paths, nested blocks, loops and branches, and the refusals.

The exact forms are checked bit-exact against Haiku by the fixture
``fixtures/migrate/name_scope/nested_paths``; here each form is pinned on a
small module, and each refusal keeps the Haiku code under its TODO.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import jax
import libcst as cst
import numpy as np
import pytest
from flax import serialization

from flaxify.cli import main
from flaxify.equivalence.convert import save_npz
from flaxify.equivalence.refs import resolve_ref
from flaxify.migrate import migrate_source
from flaxify.migrate.closure_flow import block_flow

NESTED = Path(__file__).resolve().parent.parent / "fixtures" / "migrate" / "name_scope" / "nested_paths"
HEADER = "import haiku as hk\nimport jax\nimport jax.numpy as jnp\n\n\n"


def _migrate(body: str) -> tuple[str, list[str]]:
    """Migrates a module whose __call__(self, x) runs ``body``; the output and the TODO constructs."""
    source = (
        HEADER
        + "class M(hk.Module):\n    def __call__(self, x):\n"
        + textwrap.indent(textwrap.dedent(body), "        ")
        + "\n\n\nnet = hk.without_apply_rng(hk.transform(lambda x: M()(x)))\n"
    )
    result = migrate_source(source.encode(), "case.py")
    assert migrate_source(result.source, "case.py").source == result.source  # a fixed point
    return result.source.decode(), [t.construct for t in result.todos]


def test_a_path_scope_is_one_name_scope_per_part() -> None:
    out, todos = _migrate('with hk.name_scope("a/b"):\n    x = hk.Linear(4)(x)\nreturn x')
    assert todos == []
    assert 'x = NameScope(lambda _, x: NameScope(_name_scope_a_b, name="b")(x), name="a")(x)' in out
    assert 'name="linear"' in out


def test_the_default_method_name_is_the_plain_form() -> None:
    out, todos = _migrate('with hk.name_scope("s", method_name="__call__"):\n    x = hk.Linear(4)(x)\nreturn x')
    assert todos == [] and 'x = NameScope(_name_scope_s, name="s")(x)' in out


def test_a_repeated_first_part_is_numbered_like_haiku() -> None:
    out, todos = _migrate('with hk.name_scope("a/b"):\n    x = hk.Linear(4)(x)\nwith hk.name_scope("a/c"):\n    x = hk.Linear(4)(x)\nreturn x')
    assert todos == []
    assert 'name="a")(x)' in out and 'name="a_1")(x)' in out and 'name="c")(x)' in out


def test_nested_blocks_become_nested_closures_with_their_own_counters() -> None:
    out, todos = _migrate(
        'with hk.name_scope("outer"):\n'
        '    with hk.name_scope("inner"):\n        h = hk.Linear(4)(x)\n'
        '    with hk.name_scope("inner"):\n        x = hk.Linear(4)(h)\n'
        "return x"
    )
    assert todos == []
    assert "def _name_scope_outer(scope, x):\n            def _name_scope_inner(scope):" in out
    assert 'h = NameScope(_name_scope_inner, name="inner")()' in out
    assert 'x = NameScope(_name_scope_inner_1, name="inner_1")()' in out
    assert 'h, x = NameScope(_name_scope_outer, name="outer")(x)' in out


def test_loops_and_branches_run_unchanged_in_the_closure() -> None:
    out, todos = _migrate(
        'with hk.name_scope("s"):\n'
        "    for i in range(2):\n        x = hk.Linear(4)(x)\n"
        "    if x.shape[-1] > 2:\n        y = x * 2\n    else:\n        y = x\n"
        "return y"
    )
    assert todos == []
    # `i` is bound only if the loop runs and is not read after: it stays local to the closure.
    assert "def _name_scope_s(scope, x):" in out and "return x, y" in out
    assert 'x, y = NameScope(_name_scope_s, name="s")(x)' in out


def test_a_name_bound_in_one_branch_and_read_after_keeps_its_earlier_value() -> None:
    out, todos = _migrate('y = x\nwith hk.name_scope("s"):\n    if x.shape[0] > 1:\n        y = hk.Linear(4)(x)\nreturn y')
    assert todos == []
    assert "def _name_scope_s(scope, y):" in out and 'y = NameScope(_name_scope_s, name="s")(y)' in out


@pytest.mark.parametrize(
    "body",
    [
        'with hk.name_scope("s"):\n    return hk.Linear(4)(x)',  # return leaves the method
        'with hk.name_scope("s"):\n    global G\n    G = hk.Linear(4)(x)\nreturn G',
        'with hk.name_scope("s"):\n    f = lambda v: hk.Linear(4)(v)\n    y = f(x)\nreturn y',
        'with hk.name_scope("s"):\n    if x.shape[0]:\n        y = hk.Linear(4)(x)\nreturn y',  # y may be unbound after it
        'with hk.name_scope("s"):\n    y = z + 1\n    z = hk.Linear(4)(x)\nreturn y',  # z is not bound before
        'with hk.name_scope("s"):\n    for _ in range(2):\n        with hk.name_scope("t"):\n            x = hk.Linear(4)(x)\nreturn x',
        'with hk.name_scope("s_1"):\n    y = hk.Linear(4)(x)\nreturn y',  # an explicit number moves Haiku's counter
        'with hk.name_scope("linear"):\n    y = hk.Linear(4)(x)\nreturn hk.Linear(4)(y)',  # shares the module counter
        'with hk.name_scope("s", method_name="f"):\n    y = hk.Linear(4)(x)\nreturn y',
        'with hk.name_scope(name="s"):\n    y = hk.Linear(4)(x)\nreturn y',
        'with hk.name_scope("s"):\n    try:\n        y = hk.Linear(4)(x)\n    except ValueError:\n        y = x\nreturn y',
    ],
)
def test_blocks_a_closure_would_change_stay_todo(body: str) -> None:
    out, todos = _migrate(body)
    assert "hk.name_scope" in todos
    assert "NameScope(_name_scope" not in out


def test_a_scope_entered_in_a_branch_makes_later_scopes_of_that_name_todo() -> None:
    out, todos = _migrate(
        'if x.shape[0] > 1:\n    with hk.name_scope("s"):\n        x = hk.Linear(4)(x)\n'
        'with hk.name_scope("s"):\n    y = hk.Linear(4)(x)\nwith hk.name_scope("t"):\n    y = hk.Linear(4)(y)\nreturn y'
    )
    assert todos.count("hk.name_scope") == 2  # Haiku's number for the second "s" depends on the branch
    assert 'NameScope(_name_scope_t, name="t")(y)' in out


def test_a_numbered_scope_in_a_branch_makes_later_scopes_of_its_base_todo() -> None:
    _, todos = _migrate(
        'if x.shape[0] > 1:\n    with hk.name_scope("s_2"):\n        x = hk.Linear(4)(x)\n'
        'with hk.name_scope("s"):\n    y = hk.Linear(4)(x)\nreturn y'
    )
    assert todos.count("hk.name_scope") == 2


def _flow(code: str):  # type: ignore[no-untyped-def]
    return block_flow(cst.parse_module(textwrap.dedent(code)).body, lambda *_: None, lambda _: False)


def test_flow_inputs_are_names_read_before_they_are_surely_bound() -> None:
    flow = _flow("n += 1\nfor _ in range(2):\n    x = f(x)\nif c:\n    y = 1\nelse:\n    y = 2\nz = [w for w in y]\n")
    assert flow is not None
    assert flow.inputs() == ["n", "x"]  # `n` by `+=`, `x` on the loop's first pass
    assert flow.definite == ["n", "y", "z"]  # the loop body may not run; both branches bind y
    assert "w" not in flow.early  # a comprehension variable is not a read of the block


@pytest.mark.parametrize("code", ["del x\n", "import os\n", "x: int\n", "while c:\n    pass\nelse:\n    y = 1\n", "break\n", "y = super().f()\n"])
def test_flow_refuses_what_a_closure_changes(code: str) -> None:
    assert _flow(code) is None


def test_convert_params_carries_nested_scope_paths_over(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """A Haiku checkpoint of the nested_paths fixture converts onto the migrated tree (a/b buckets and all)."""
    haiku_ref, flax_ref = f"{NESTED}.before.py:net", f"{NESTED}.after.py:net"
    net = resolve_ref(haiku_ref)
    x = jax.random.normal(jax.random.PRNGKey(1), (2, 4))
    params = jax.tree.map(lambda p: p + 0.25, net.init(jax.random.PRNGKey(7), x))  # not what init gives
    save_npz(tmp_path / "ckpt.npz", jax.device_get(params), {})
    out = tmp_path / "flax.msgpack"
    assert main(["convert-params", haiku_ref, flax_ref, str(tmp_path / "ckpt.npz"), "-o", str(out), "--input", "f32[2,4]"]) == 0, (
        capsys.readouterr().err
    )
    variables = serialization.msgpack_restore(out.read_bytes())["params"]["tower"]
    np.testing.assert_array_equal(variables["encoder"]["input"]["bias"], params["tower/encoder/input"]["bias"])
    np.testing.assert_array_equal(variables["encoder_1"]["output"]["linear"]["kernel"], params["tower/encoder_1/output/linear"]["w"])
    np.testing.assert_array_equal(variables["body"]["mixer_1"]["scale"], params["tower/body/mixer_1"]["scale"])
    flax_out = resolve_ref(flax_ref).apply({"params": {"tower": variables}}, x)
    np.testing.assert_array_equal(np.asarray(flax_out), np.asarray(net.apply(params, x)))
