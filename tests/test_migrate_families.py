"""Spec tables for the issue-5 families: RNG, state, BatchNorm, multi_transform, recurrent, attention, lifted.

Each case is a small Haiku program, a fragment its migration must contain, and
(for the TODO cases) the construct the TODO names. Every output is also run
through the migration again, which must change nothing.
"""

from __future__ import annotations

import textwrap

import pytest

from flaxify.migrate import migrate_source

HEADER = "import haiku as hk\nimport jax\nimport jax.numpy as jnp\n\n\n"


def _module(body: str) -> str:
    """A module class whose __call__ runs ``body`` (4-space indented lines)."""
    return HEADER + "class M(hk.Module):\n    def __call__(self, x, training):\n" + textwrap.indent(textwrap.dedent(body), "        ")


def _migrate(source: str) -> tuple[str, list[str]]:
    result = migrate_source(source.encode(), "case.py")
    again = migrate_source(result.source, "case.py")
    assert not again.changed, again.source.decode()
    return result.source.decode(), [t.construct for t in result.todos]


REWRITES = [
    ("hk.dropout(hk.next_rng_key(), 0.5 if training else 0.0, x)", "nn.Dropout(0.5, deterministic=not training)(x)"),
    ("hk.dropout(hk.next_rng_key(), 0.0 if not training else 0.2, x)", "nn.Dropout(0.2, deterministic=not training)(x)"),
    ("hk.dropout(hk.next_rng_key(), 0.1, x)", "nn.Dropout(0.1, deterministic=False)(x)"),
    ("hk.dropout(key, 0.1, x, broadcast_dims=(0,))", "nn.Dropout(0.1, broadcast_dims=(0,), deterministic=False)(x, rng=key)"),
    ("hk.next_rng_key()", 'self.make_rng("dropout")'),
    ("hk.next_rng_keys(4)", 'jax.random.split(self.make_rng("dropout"), 4)'),
    ("hk.maybe_next_rng_key()", '(self.make_rng("dropout") if self.has_rng("dropout") else None)'),
    ('hk.get_state("n", [], jnp.int32, init=jnp.zeros)', 'self.variable("state", "n", jnp.zeros, [], jnp.int32).value'),
    ('hk.get_state("n", [3], init=jnp.ones)', 'self.variable("state", "n", jnp.ones, [3], jnp.float32).value'),
    ('hk.get_state("n")', 'self.get_variable("state", "n")'),
    ("hk.BatchNorm(True, True, 0.9)(x, training)", 'BatchNorm(True, True, 0.9, name="batch_norm")(x, training)'),
    ('hk.BatchNorm(False, True, 0.99, data_format="NCHW")(x, is_training=False)', 'data_format="NCHW", name="batch_norm")(x, is_training=False)'),
    ("hk.BatchNorm(True, False, 0.9, cross_replica_axis='i')(x, not training)", "BatchNorm(True, False, 0.9, cross_replica_axis='i', name=\"batch_norm\")(x, not training)"),
    ("hk.BatchNorm(True, True, 0.9, axis=(0, 1))(x, training)", 'BatchNorm(True, True, 0.9, axis=(0, 1), name="batch_norm")(x, training)'),
    ("hk.BatchNorm(True, True, 0.9)(x, training, test_local_stats=True)", '(x, training, test_local_stats=True)'),
    ("hk.running_init()", "self.is_initializing()"),
    ("hk.scan(step, x, x, reverse=True)", 'nn.scan(lambda _, carry, x: step(carry, x), variable_broadcast="params", split_rngs={"params": False, "dropout": True}, reverse=True)(self, x, x)'),
    ("hk.cond(x.sum() > 0, f, lambda y: -y, x)", "nn.cond(x.sum() > 0, lambda _, *args: f(*args), lambda _, *args: (lambda y: -y)(*args), self, x)"),
    ("hk.switch(1, [f, g], x, 2)", "nn.switch(1, [lambda _, *args: f(*args), lambda _, *args: g(*args)], self, x, 2)"),
    ("hk.map(f, x)", 'nn.scan(lambda _, carry, x: (carry, f(x)), variable_broadcast="params", split_rngs={"params": False, "dropout": True})(self, None, x)[1]'),
    (
        "hk.vmap(lambda row, b: hk.Linear(3)(row) + b, in_axes=(0, None), split_rng=True)(x, 1.0)",
        'nn.vmap(lambda _, *args: (lambda row, b: nn.Dense(3, kernel_init=HAIKU_DEFAULT_KERNEL_INIT)(row) + b)(*args), variable_axes={"params": None}, split_rngs={"params": False, "dropout": True}, in_axes=(0, None)), self)(x, 1.0)',
    ),
    ("hk.MultiHeadAttention(2, 4, w_init_scale=2.0)(x, x, x)", 'w_init=nn.initializers.variance_scaling(2.0, "fan_in", "truncated_normal")'),
    ("hk.remat(hk.Linear(3), static_argnums=(1,))(x, 2)", "static_argnums=(2,)), self)(x, 2)"),
    ("hk.LSTM(8)", 'LSTM(8, name="lstm")'),
    ("hk.VanillaRNN(8, double_bias=False)", 'VanillaRNN(8, double_bias=False, name="vanilla_rnn")'),
    ("hk.GRU(8, b_init=hk.initializers.Constant(1.0))", 'GRU(8, b_init=nn.initializers.constant(1.0), name="gru")'),
    ("hk.ExponentialMovingAverage(0.9, warmup_length=3, zero_debias=False)(x)", 'ExponentialMovingAverage(0.9, zero_debias=False, warmup_length=3, name="exponential_moving_average")(x)'),
    ("hk.DeepRNN([hk.LSTM(3), jax.nn.relu])", 'DeepRNN([LSTM(3, name="lstm"), jax.nn.relu], name="deep_rnn")'),
    ("hk.ResetCore(hk.GRU(3))", 'ResetCore(GRU(3, name="gru"), name="reset_core")'),
    ("hk.EMAParamsTree(0.9, warmup_length=2, zero_debias=False)(x)", 'EMAParamsTree(0.9, zero_debias=False, warmup_length=2, name="ema_params_tree")(x)'),
]


@pytest.mark.parametrize(("expr", "expected"), REWRITES, ids=[e for e, _ in REWRITES])
def test_rewrites_inside_module(expr: str, expected: str) -> None:
    out, todos = _migrate(_module(f"return {expr}\n"))
    assert expected in out, out
    assert "import haiku" not in out, out
    assert todos == []


TODOS = [
    ("hk.MultiHeadAttention(2, 4)(x, x, x)", "hk.MultiHeadAttention", "exactly one of w_init"),
    ("hk.layer_stack(2, transparent=True)(lambda y: y)(x)", "hk.layer_stack", "transparent"),
    ("hk.vmap(lambda y: y, spmd_axis_name='d', split_rng=False)(x)", "hk.vmap", "spmd_axis_name"),
    ("hk.switch(0, branches, x)", "hk.switch", "literal list"),
    ("hk.cond(training, f, g, operand=x)", "hk.cond", "operand="),
    ("hk.while_loop(lambda y: jax.random.uniform(hk.next_rng_key()) < 0.5, lambda y: y, x)", "hk.while_loop", "nn.while_loop"),
    ("hk.nets.VectorQuantizerEMA(4, 8, 0.25, 0.9)(x, is_training=training)", "hk.nets.VectorQuantizerEMA", "codebook"),
]


@pytest.mark.parametrize(("expr", "construct", "reason"), TODOS, ids=[c for _, c, _ in TODOS])
def test_unsupported_constructs_get_precise_todos(expr: str, construct: str, reason: str) -> None:
    out, todos = _migrate(_module(f"return {expr}\n"))
    assert construct in todos, out
    line = next(line for line in out.splitlines() if f"TODO(flaxify): {construct}:" in line)
    assert reason in line


def test_set_state_after_get_state_is_guarded_and_first_set_is_not() -> None:
    out, _ = _migrate(_module('n = hk.get_state("n", [], jnp.int32, init=jnp.zeros)\nhk.set_state("n", n + 1)\nhk.set_state("last", x)\nreturn x\n'))
    assert 'if not self.is_initializing():\n            self.put_variable("state", "n", n + 1)' in out
    assert '\n        self.put_variable("state", "last", x)' in out


def test_guarded_set_state_inside_an_expression_is_a_todo() -> None:
    _, todos = _migrate(_module('n = hk.get_state("n", [], jnp.int32, init=jnp.zeros)\nreturn hk.set_state("n", n + 1) or x\n'))
    assert "hk.set_state" in todos


def test_remat_inside_a_layer_stack_body_is_a_todo() -> None:
    body = "@hk.layer_stack(2)\ndef stack(y):\n    return hk.remat(hk.Linear(3))(y)\n\nreturn stack(x)\n"
    out, todos = _migrate(_module(body))
    assert "hk.remat" in todos and "@layer_stack(2)" in out


def test_layer_stacks_are_named_like_haiku_and_emitted_once() -> None:
    body = (
        "@hk.layer_stack(2)\ndef a(y):\n    return hk.Linear(3)(y)\n\n"
        "@hk.experimental.layer_stack(3)\ndef b(y):\n    return hk.Linear(3)(y)\n\nreturn b(a(x))\n"
    )
    out, todos = _migrate(_module(body))
    assert todos == []
    assert out.count("def layer_stack(") == 1 and out.count("class LayerStackBody(") == 1
    assert '@layer_stack(3, name="__layer_stack_no_per_layer_1")' in out
    assert 'nn.Dense(3, kernel_init=' in out and 'name="linear")(y)' in out


STATEFUL = HEADER + textwrap.dedent(
    """\
    def forward(x, is_training):
        return hk.BatchNorm(True, True, 0.9)(x, is_training)


    net = hk.transform_with_state(forward)


    def step(params, state, rng, x):
        params, state = net.init(rng, x, is_training=True)
        out, state = net.apply(params, state, rng, x, is_training=True)
        variables = net.init(rng, x, is_training=True)
        return out, state, net.apply(params, state.copy(), rng, x, is_training=True), variables
    """
)


def test_stateful_call_sites() -> None:
    out, todos = _migrate(STATEFUL)
    assert 'state = net.init(rng, x, is_training=True)\n    params = state.pop("params")' in out
    assert 'out, state = net.apply({"params": params, **state}, x, is_training=True, mutable=list(state))' in out
    assert todos.count("init") == 1 and todos.count("apply") == 1  # unpacked elsewhere / state not a plain name


MULTI = HEADER + textwrap.dedent(
    """\
    class AE(hk.Module):
        def __call__(self, x):
            return self.decode(x)

        def decode(self, z):
            return hk.Linear(3)(z)


    def make():
        ae = AE()
        return ae, (ae.decode,)


    net = hk.without_apply_rng(hk.multi_transform(make))


    def use(rng, x):
        params = net.init(rng, x)
        decode, = net.apply
        return net.apply[0](params, x), decode
    """
)


def test_multi_transform_call_sites() -> None:
    out, todos = _migrate(MULTI)
    assert "net = AE()" in out and "def make" not in out
    assert 'net.apply({"params": params}, x, method="decode")' in out
    assert "@nn.compact_name_scope\n    def decode" in out
    # Unpacking the tuple of apply functions gives one Haiku-signature lambda per method.
    assert 'decode, = (lambda params, *args, **kwargs: net.apply({"params": params}, *args, method="decode", **kwargs)),' in out
    assert todos == []


NOOPS = [
    "import jax\n\nkey = jax.random.PRNGKey(0)\n",
    "import flax.linen as nn\n\n\nclass M(nn.Module):\n    @nn.compact\n    def __call__(self, x):\n        return nn.Dropout(0.1, deterministic=True)(x)\n",
]


@pytest.mark.parametrize("source", NOOPS)
def test_non_haiku_code_is_untouched(source: str) -> None:
    assert not migrate_source(source.encode(), "case.py").changed


DECORATED = HEADER + textwrap.dedent(
    """\
    @hk.without_apply_rng
    @hk.transform
    def head(x):
        return hk.Linear(3)(x)


    def use(rng, x):
        return head.apply(head.init(rng, x), x)
    """
)


def test_decorated_transform_becomes_class_and_instance() -> None:
    out, todos = _migrate(DECORATED)
    assert "class Head(nn.Module):" in out and "\nhead = Head()\n" in out
    assert 'head.apply({"params": head.init(rng, x)["params"]}, x)' in out
    assert todos == []


AS_VALUES = HEADER + textwrap.dedent(
    """\
    def forward(x, is_training):
        return hk.dropout(hk.next_rng_key(), 0.5 if is_training else 0.0, hk.BatchNorm(True, True, 0.9)(x, is_training))


    net = hk.transform_with_state(forward)
    init_fn = jax.jit(net.init, static_argnums=(2,))
    apply_fn = jax.jit(net.apply, static_argnums=(4,))
    """
)


def test_init_and_apply_used_as_values_keep_haikus_signature() -> None:
    out, todos = _migrate(AS_VALUES)
    assert 'jax.jit((lambda rng, *args, **kwargs: (lambda variables: (variables.pop("params"), variables))(net.init(rng, *args, **kwargs))), static_argnums=(2,))' in out
    assert (
        'jax.jit((lambda params, state, rng, *args, **kwargs: net.apply({"params": params, **state}, *args,'
        ' rngs=None if rng is None else {"dropout": rng}, mutable=list(state), **kwargs)), static_argnums=(4,))'
    ) in out
    assert todos == []


def test_a_user_class_named_like_a_helper_blocks_the_rewrite() -> None:
    source = HEADER + "class LSTMState:\n    pass\n\n\n" + "class M(hk.Module):\n    def __call__(self, x):\n        return hk.LSTM(3)\n"
    out, todos = _migrate(source)
    assert todos == ["hk.LSTM"] and "defines its own LSTMState" in out
