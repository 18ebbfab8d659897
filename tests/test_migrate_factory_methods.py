"""Methods that build and return a new module (``hk.nets.MLP.reverse``) -> ``@nn.nowrap`` factories.

* an exact factory migrates with no TODO: ``@nn.nowrap`` and ``<linear>.input_size``
  read from the kernel the Dense recorded, and it computes Haiku's numbers;
* every condition that makes it inexact leaves a TODO naming that condition;
* the checker maps Haiku's ``x/~method/child`` onto the caller's ``child``
  *by name* (equal-shaped layers would otherwise be paired by creation order).

The whole ``hk.nets.MLP`` (docstring example, bit-exact, 0 TODOs) is proven in
``tests/test_realworld_haiku_nets.py``; the engine end to end in
``fixtures/migrate/methods/factory_mirror``.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
import pytest

from flaxify.equivalence import build_plan, compare, parse_spec
from flaxify.equivalence.mapping import caller_scope_readings
from flaxify.migrate import migrate_source

STACK = """
import haiku as hk
import jax


class Stack(hk.Module):
    def __init__(self, sizes, name=None):
        super().__init__(name=name)
        layers = []
        for index, size in enumerate(sizes):
            layers.append(hk.Linear(size, name="linear_%d" % index))
        self.layers = tuple(layers)

    def __call__(self, x):
        for layer in self.layers:
            x = jax.nn.tanh(layer(x))
        return x

    def reverse(self, name=None):
        {body}
        return Stack(sizes, name=name or self.name + "_reversed")


def forward(x):
    stack = Stack([4, 4])
    y = stack(x)
    return stack.reverse()(y)


net = hk.without_apply_rng(hk.transform(forward))
"""
EXACT = """sizes = tuple(layer.input_size for layer in reversed(self.layers) if layer.input_size is not None)
        if len(sizes) != len(self.layers):
            raise ValueError("call it first")"""


def _migrate(source: str) -> Any:
    return migrate_source(source.encode(), "case.py")


def _run(source: str) -> dict[str, Any]:
    namespace: dict[str, Any] = {}
    exec(compile(source, "<case>", "exec"), namespace)  # noqa: S102 - the test's own source
    return namespace


def test_exact_factory_becomes_nowrap_and_reads_the_kernel() -> None:
    result = _migrate(STACK.format(body=EXACT))
    out = result.source.decode()
    assert result.todos == ()
    assert "    @nn.nowrap\n    def reverse(self, name=None):" in out
    assert 'if layer.has_variable("params", "kernel")' in out  # `input_size is not None`
    assert (
        '(layer.get_variable("params", "kernel").shape[0] if layer.has_variable("params", "kernel") else None)' in out
    )
    assert "input_size" not in out
    assert not migrate_source(result.source, "case.py").changed


def test_exact_factory_computes_haikus_numbers_and_maps_by_name() -> None:
    """All kernels are 4x4: only the by-name caller-scope rule pairs the reversed layers right."""
    source = STACK.format(body=EXACT)
    haiku_net, flax_net = _run(source)["net"], _run(_migrate(source).source.decode())["net"]
    report = compare(haiku_net, flax_net, [parse_spec("f32[3,4]")], devices="cpu", init_seeds=0, run_probes=False)
    assert report.equivalent and report.bitexact, report.format_table()

    x = np.ones((3, 4), np.float32)
    params = haiku_net.init(jax.random.PRNGKey(0), x)
    template = jax.eval_shape(lambda: flax_net.init(jax.random.PRNGKey(0), x))
    plan = build_plan(params, None, template, root_is_module=False)
    assert plan.complete
    placed = {(t.sources[0].module, t.flax_path[:-1]) for t in plan.transfers}
    assert placed == {
        ("stack/~/linear_0", ("stack", "linear_0")),
        ("stack/~/linear_1", ("stack", "linear_1")),
        ("stack/~reverse/stack_reversed/~/linear_0", ("stack_reversed", "linear_0")),
        ("stack/~reverse/stack_reversed/~/linear_1", ("stack_reversed", "linear_1")),
    }
    assert {t.by for t in plan.transfers} == {"name"}


def test_before_the_first_call_init_raises_as_in_haiku() -> None:
    """Haiku's input_size is None until the layer is called; so is the Dense's kernel during init."""
    source = STACK.format(body=EXACT).replace(
        "    y = stack(x)\n    return stack.reverse()(y)", "    return stack.reverse()(stack(x))"
    )
    haiku_net, flax_net = _run(source)["net"], _run(_migrate(source).source.decode())["net"]
    x = np.ones((3, 4), np.float32)
    with pytest.raises(ValueError, match="call it first"):
        haiku_net.init(jax.random.PRNGKey(0), x)
    with pytest.raises(ValueError, match="call it first"):
        flax_net.init(jax.random.PRNGKey(0), x)


TODOS = [
    pytest.param(
        STACK.format(body=EXACT).replace('name=name or self.name + "_reversed"', ""),
        "without name=",
        id="no-name",
    ),
    pytest.param(
        STACK.format(body=EXACT).replace("hk.Linear(size, ", "hk.nets.MLP([size], "),
        "is not provably one",
        id="not-a-linear",
    ),
    pytest.param(
        STACK.format(body=EXACT).replace(
            "self.layers = tuple(layers)", "self.layers = layers\n        self.layers.append(hk.Conv1D(4, 3))"
        ),
        "is not provably one",
        id="collection-changed-after",
    ),
    pytest.param(
        STACK.format(body=EXACT + '\n        hk.get_parameter("scale", [], init=hk.initializers.Constant(1.0))'),
        "needs this module's own scope",
        id="makes-a-parameter",
    ),
    pytest.param(
        STACK.format(body=EXACT).replace("        return x\n", "        self.reverse()\n        return x\n", 1),
        "the class calls self.reverse",
        id="called-by-the-class",
    ),
]


@pytest.mark.parametrize(("source", "reason"), TODOS)
def test_inexact_factory_keeps_a_precise_todo(source: str, reason: str) -> None:
    result = _migrate(source)
    assert [t.construct for t in result.todos] == ["method reverse"], result.todos
    assert reason in result.todos[0].reason
    assert "input_size" in result.source.decode()  # the method is left as it was


def test_caller_scope_readings() -> None:
    assert caller_scope_readings("mlp/~reverse/mlp_reversed/~/linear_0") == ["mlp_reversed/~/linear_0"]
    assert caller_scope_readings("net/~/mlp/~reverse/rev/~/linear") == ["net/~/rev/~/linear"]
    assert caller_scope_readings("ae/~encode/linear") == ["linear"]
    assert caller_scope_readings("ae/~encode/linear", keep=1) == []  # the root's caller is outside the tree
    assert caller_scope_readings("mlp/~/linear_0") == []
    assert caller_scope_readings("a/~m/b/~n/c") == ["b/~n/c", "a/~m/c", "c"]


ROOT = """
import haiku as hk
import jax


class Pair(hk.Module):
    def __init__(self, name=None):
        super().__init__(name=name)
        self.first = {first}

    def __call__(self, x):
        return self.back(x)

    def back(self, x):
        y = jax.nn.relu(self.first(x))
        return hk.Linear(self.first.input_size)(y)


def _methods():
    model = Pair(name="pair")
    return model, {{"__call__": model.__call__, "back": model.back}}


net = hk.without_apply_rng(hk.multi_transform(_methods))
"""


def test_input_size_in_a_root_method_scope_is_read_from_the_kernel() -> None:
    """The same read in an ``nn.compact_name_scope`` method (a multi_transform root) is exact too."""
    source = ROOT.format(first='hk.Linear(4, name="first")')
    result = _migrate(source)
    assert result.todos == ()
    assert "@nn.compact_name_scope" in result.source.decode()
    haiku_net, flax_net = _run(source)["net"], _run(result.source.decode())["net"]
    spec = parse_spec("f32[3,6]")
    report = compare(haiku_net, flax_net, {"__call__": [spec], "back": [spec]}, devices="cpu", init_seeds=0)
    assert report.equivalent and report.bitexact, report.format_table()


def test_input_size_of_another_module_in_a_root_method_scope_stays_todo() -> None:
    """A user module's own ``input_size`` attribute is no Dense kernel: the method keeps its TODO."""
    source = ROOT.format(first="hk.nets.MLP([4])")
    result = _migrate(source)
    assert [t.construct for t in result.todos] == ["method back"]
    assert "input_size" in result.todos[0].reason
