"""Module internals of Haiku's own nets: initializer fields, variable-creating properties, call-time sizes.

* ``w_init=None`` constructor arguments that only feed layers' initializer
  slots become Flax-initializer fields (``init_fields.py``);
* ``@property`` methods creating a parameter or state entry move to ``setup()``
  (``properties.py``), and stay Haiku under a precise TODO when Linen's eager
  creation would differ;
* a method returning a module sized by its layers' call-time ``input_size``
  gets a TODO saying why when it is not an exact ``@nn.nowrap`` factory
  (``factory_methods.py``; the exact cases: ``tests/test_migrate_factory_methods.py``);
* the emitted ``ExponentialMovingAverage`` ports ``initialize`` with Haiku's
  ``init`` semantics.

Bit-exactness of whole models is proven by the fixtures
(``fixtures/migrate/modules/{initializer_fields,variable_properties}``) and by
``tests/test_realworld_haiku_nets.py``; these tests pin the decisions.
"""

from __future__ import annotations

from typing import Any

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flaxify.migrate import migrate_source


def _migrate(source: str) -> Any:
    return migrate_source(source.encode(), "case.py")


def _run(source: str) -> dict[str, Any]:
    namespace: dict[str, Any] = {}
    exec(compile(source, "<case>", "exec"), namespace)  # noqa: S102 - the test's own source
    return namespace


FIELD_TEMPLATE = '''
import haiku as hk


class Head(hk.Module):
    def __init__(self, size, w_init: hk.initializers.Initializer | None = {default}, name=None):
        super().__init__(name=name)
        self.size = size
        self.w_init = w_init

    def __call__(self, x):
        {extra}
        return hk.Linear(self.size, w_init=self.w_init)(x)
'''


def test_initializer_field_keeps_haikus_default_and_says_flax_in_its_type() -> None:
    result = _migrate(FIELD_TEMPLATE.format(default="None", extra="pass"))
    assert result.todos == ()
    assert "w_init: nn.initializers.Initializer | None = None" in result.source.decode()
    source = result.source.decode()
    assert "kernel_init=self.w_init if self.w_init is not None else HAIKU_DEFAULT_KERNEL_INIT," in source
    assert 'HAIKU_DEFAULT_KERNEL_INIT = nn.initializers.variance_scaling(0.87962566103423978**2, "fan_in", "truncated_normal")' in source


@pytest.mark.parametrize(
    ("default", "extra"),
    [
        ("hk.initializers.Constant(1.0)", "pass"),  # a default that is not None
        ("None", "w = self.w_init([2], jnp.float32)"),  # called Haiku-style
        ("None", "print(self.w_init)"),  # handed to a function
    ],
    ids=["non-none-default", "called", "passed-on"],
)
def test_a_field_used_otherwise_keeps_the_layer_todo(default: str, extra: str) -> None:
    result = _migrate(FIELD_TEMPLATE.format(default=default, extra=extra))
    assert "hk.Linear" in [t.construct for t in result.todos]
    assert "hk.initializers.Initializer" in [t.construct for t in result.todos]


REVERSE = '''
import haiku as hk


class Stack(hk.Module):
    def __init__(self, sizes, name=None):
        super().__init__(name=name)
        self.layers = [hk.Linear(size) for size in sizes]

    def __call__(self, x):
        for layer in self.layers:
            x = layer(x)
        return x

    def reverse(self):
        return Stack([layer.input_size for layer in reversed(self.layers)])
'''


def test_reading_a_call_time_input_size_is_a_precise_todo_on_that_method_only() -> None:
    result = _migrate(REVERSE)
    assert [t.construct for t in result.todos] == ["method reverse"]
    assert "without name=" in result.todos[0].reason  # Haiku's name in ~reverse would not be Linen's
    assert "class Stack(nn.Module):" in result.source.decode()


PROPERTY_TEMPLATE = '''
import haiku as hk
import jax.numpy as jnp


class Codes(hk.Module):
    def __init__(self, size, name=None):
        super().__init__(name=name)
        self.size = size
        {init_extra}

    @property
    def codes(self):
        return hk.get_state({entry}, [self.size], jnp.float32, init=jnp.ones)

    def __call__(self, x, flag):
        {call}
'''

PLAIN = {"init_extra": "", "entry": '"codes"', "call": "return x * self.codes"}


def test_state_property_reads_and_writes_go_through_the_setup_variable() -> None:
    source = PROPERTY_TEMPLATE.format(**{**PLAIN, "call": 'hk.set_state("codes", x)\n        return x * self.codes'})
    result = _migrate(source)
    text = result.source.decode()
    assert result.todos == ()
    assert 'self._codes = self.variable("state", "codes", jnp.ones, [self.size], jnp.float32)' in text
    assert "return self._codes.value" in text
    assert "self._codes.value = x" in text
    assert "@nn.compact" not in text  # nothing is created inline any more


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"call": "return x * self.codes if flag else x"}, "does not read it on every path"),
        ({"call": "if flag:\n            return x\n        return x * self.codes"}, "does not read it on every path"),
        ({"init_extra": "self.first = self.codes"}, "__init__ reads `self.codes`"),
        ({"entry": "self.name"}, "not a string literal"),
        ({"call": 'y = hk.get_state("codes", [1], init=jnp.zeros)\n        return x * self.codes'}, "also creates `codes`"),
    ],
    ids=["conditional-read", "early-return", "read-in-init", "dynamic-name", "created-twice"],
)
def test_a_property_linen_would_create_differently_stays_under_a_precise_todo(change: dict[str, str], reason: str) -> None:
    result = _migrate(PROPERTY_TEMPLATE.format(**{**PLAIN, **change}))
    todos = {t.construct: t.reason for t in result.todos}
    assert reason in todos["method codes"]
    assert "@property\n    def codes(self):\n        return hk.get_state(" in result.source.decode()


EMA_INITIALIZE = '''
import haiku as hk
import jax.numpy as jnp


class Tracker(hk.Module):
    def __init__(self, name=None):
        super().__init__(name=name)
        self.ema = hk.ExponentialMovingAverage(0.5, name="ema")

    def __call__(self, x):
        self.ema.initialize(x.shape, x.dtype)
        return self.ema(x)


def forward(x):
    return Tracker()(x)


net = hk.transform_with_state(forward)
'''


def test_ema_initialize_keeps_haikus_init_state_and_updates() -> None:
    """Haiku's init after ``initialize`` keeps ``average`` at zeros; then both update alike."""
    migrated = _migrate(EMA_INITIALIZE).source.decode()
    assert "TODO" not in migrated
    haiku_net, flax_net = _run(EMA_INITIALIZE)["net"], _run(migrated)["net"]
    x = jnp.arange(6.0).reshape(2, 3)
    _, hk_state = haiku_net.init(jax.random.PRNGKey(0), x)
    fx_state = flax_net.init(jax.random.PRNGKey(0), x)["state"]
    expected = hk_state["tracker/~/ema"]
    for leaf in ("average", "counter", "hidden"):
        np.testing.assert_array_equal(fx_state["tracker"]["ema"][leaf], expected[leaf])
    assert not np.any(expected["average"])  # zeros, not the first value
    hk_out, hk_state = haiku_net.apply({}, hk_state, None, x * 2)
    fx_out, fx_new = flax_net.apply({"state": fx_state}, x * 2, mutable=["state"])
    np.testing.assert_array_equal(fx_out, hk_out)
    for leaf in ("average", "counter", "hidden"):
        np.testing.assert_array_equal(fx_new["state"]["tracker"]["ema"][leaf], hk_state["tracker/~/ema"][leaf])

