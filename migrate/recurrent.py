"""Haiku's recurrent cores and unrolls -> exact Linen modules and ``nn.scan``.

Flax's built-in cells compute other functions or store other layouts
(``nn.OptimizedLSTMCell`` splits Haiku's fused ``[x; h]`` matrix per gate and
needs the forget ``+1`` folded into a bias; ``nn.GRUCell`` places the reset gate
elsewhere; ``nn.SimpleCell`` has one bias and tanh). The migration emits, once
per file, small Linen modules that compute exactly what Haiku computes, keep
Haiku's call convention ``core(inputs, state) -> (outputs, state)`` and its
``initial_state(batch_size)``, and store Haiku's leaves under Haiku's names:

=====================  ==========================================  =================
Haiku                  emitted                                     leaves
=====================  ==========================================  =================
``hk.LSTM(h)``         ``LSTM(h)`` (+ ``LSTMState(hidden, cell)``)  ``linear: kernel (I+H, 4H), bias``
``hk.GRU(h)``          ``GRU(h)``                                  ``w_i, w_h, b``
``hk.VanillaRNN(h)``   ``VanillaRNN(h)``                           ``linear``, ``linear_1``
``hk.Conv2DLSTM(...)`` ``ConvLSTM(2, ...)``                        ``input_to_hidden``, ``hidden_to_hidden``
``hk.dynamic_unroll``  ``dynamic_unroll`` over ``nn.scan``          parameters broadcast
``hk.static_unroll``   ``static_unroll`` (a Python loop)           --
``hk.DeepRNN(layers)`` ``DeepRNN(layers)``                         -- (the layers own theirs)
``hk.deep_rnn_with_``  ``deep_rnn_with_skip_connections(layers)``  --
``skip_connections``
``hk.ResetCore(core)`` ``ResetCore(core)``                         -- (the core owns its own)
``hk.IdentityCore()``  ``IdentityCore()``                          --
=====================  ==========================================  =================

So ``lstm/linear: {w, b}`` converts by renaming only and the outputs are
bit-identical (same fused matmul, same gate order i, g, f, o, same ``+1``).
The combinators own no parameters: as in Haiku, the cores handed to them are
built (and named) in the calling scope, so ``hk.DeepRNN([hk.LSTM(8), jax.nn.relu,
hk.LSTM(4)])`` keeps ``lstm`` and ``lstm_1`` where Haiku has them. Their state
follows Haiku's structure (``DeepRNN``: a tuple with one entry per core, in
order; ``ResetCore``: the wrapped core's state; ``IdentityCore``: ``()``), and
``nn.scan`` lifts the cores inside a combinator with it (Flax collects the
scopes of modules held in a module's fields). A layer counts as a core when it
has an ``initial_state`` method (Haiku: ``isinstance(layer, hk.RNNCore)``;
every migrated core keeps that method), so ``jax.nn.relu`` or an ``nn.Dense``
is applied as a plain function, as Haiku does.

``dynamic_unroll`` keeps Haiku's signature and defaults (``time_major=True``,
``reverse``, ``return_all_states``, ``unroll``); it lifts the step with
``nn.scan(..., variable_broadcast="params", split_rngs={"params": False})``.

Examples::

    core = hk.LSTM(8)                               -> core = LSTM(8, name="lstm")
    outs, state = hk.dynamic_unroll(core, xs, s0)   -> outs, state = dynamic_unroll(core, xs, s0)
    hk.LSTMState(hidden=h, cell=c)                  -> LSTMState(hidden=h, cell=c)
"""

from __future__ import annotations

from flaxify.migrate import ema_tree
from flaxify.migrate.layers_common import Bound, Ctx, Signature, code, flax_call, literal, name_arg
from flaxify.migrate.layers_linear import Args, init_arg
from flaxify.migrate.rewrite import JAX_IMPORT, ImportSpec, Rewrite, Unsupported, merge_imports

LSTM = Signature("hk.LSTM", ("hidden_size", "name"))
GRU = Signature("hk.GRU", ("hidden_size", "w_i_init", "w_h_init", "b_init", "name"))
VANILLA_RNN = Signature("hk.VanillaRNN", ("hidden_size", "double_bias", "name"))
CONV_LSTM = Signature("hk.ConvNDLSTM", ("input_shape", "output_channels", "kernel_shape", "name"))
CONV_LSTM_DIMS = {"Conv1DLSTM": 1, "Conv2DLSTM": 2, "Conv3DLSTM": 3}

#: Haiku functions replaced by an emitted helper of the same name and signature.
FUNCTIONS = frozenset(
    {"haiku.dynamic_unroll", "haiku.static_unroll", "haiku.LSTMState", "haiku.deep_rnn_with_skip_connections"}
)

_HAIKU_LINEAR_INIT = '{nn}.initializers.variance_scaling(0.87962566103423978**2, "fan_in", "truncated_normal")'
_ADD_BATCH = "jax.tree.map(lambda x: {jnp}.broadcast_to(x, (batch_size,) + x.shape), state)"

LSTM_STATE_SOURCE = '''class LSTMState(NamedTuple):
    """Haiku's hk.LSTMState: the LSTM's hidden and cell state."""

    hidden: Any
    cell: Any
'''

LSTM_SOURCE = '''class LSTM({nn}.Module):
    """Haiku's hk.LSTM: one fused Linear on [x; h], gates i, g, f, o, forget bias +1 on every call."""

    hidden_size: int

    @{nn}.compact
    def __call__(self, inputs, prev_state):
        x_and_h = {jnp}.concatenate([inputs, prev_state.hidden], axis=-1)
        gated = {nn}.Dense(4 * self.hidden_size, kernel_init=%s, name="linear")(x_and_h)
        i, g, f, o = {jnp}.split(gated, indices_or_sections=4, axis=-1)
        f = jax.nn.sigmoid(f + 1)
        c = f * prev_state.cell + jax.nn.sigmoid(i) * {jnp}.tanh(g)
        h = jax.nn.sigmoid(o) * {jnp}.tanh(c)
        return h, LSTMState(h, c)

    def initial_state(self, batch_size):
        state = LSTMState(hidden={jnp}.zeros([self.hidden_size]), cell={jnp}.zeros([self.hidden_size]))
        return state if batch_size is None else %s
''' % (_HAIKU_LINEAR_INIT, _ADD_BATCH)

CONV_LSTM_SOURCE = '''class ConvLSTM({nn}.Module):
    """Haiku's hk.Conv1DLSTM/Conv2DLSTM/Conv3DLSTM: SAME convs input_to_hidden and hidden_to_hidden, gates i, g, f, o, forget bias +1."""

    num_spatial_dims: int
    input_shape: Any
    output_channels: int
    kernel_shape: Any

    @{nn}.compact
    def __call__(self, inputs, state):
        if isinstance(self.kernel_shape, int):
            kernel_size = (self.kernel_shape,) * self.num_spatial_dims
        else:
            kernel_size = tuple(self.kernel_shape)

        def conv(name):
            return {nn}.Conv(4 * self.output_channels, kernel_size, padding="SAME", kernel_init=%s, name=name)

        gates = conv("input_to_hidden")(inputs) + conv("hidden_to_hidden")(state.hidden)
        i, g, f, o = {jnp}.split(gates, indices_or_sections=4, axis=-1)
        f = jax.nn.sigmoid(f + 1)
        c = f * state.cell + jax.nn.sigmoid(i) * {jnp}.tanh(g)
        h = jax.nn.sigmoid(o) * {jnp}.tanh(c)
        return h, LSTMState(h, c)

    def initial_state(self, batch_size):
        shape = tuple(self.input_shape) + (self.output_channels,)
        state = LSTMState({jnp}.zeros(shape), {jnp}.zeros(shape))
        return state if batch_size is None else %s
''' % (_HAIKU_LINEAR_INIT, _ADD_BATCH)

GRU_SOURCE = '''class GRU({nn}.Module):
    """Haiku's hk.GRU: reset gate before the recurrent matmul, h' = (1 - z) h + z a (not nn.GRUCell)."""

    hidden_size: int
    w_i_init: Any = {nn}.initializers.variance_scaling(1.0, "fan_in", "truncated_normal")
    w_h_init: Any = {nn}.initializers.variance_scaling(1.0, "fan_in", "truncated_normal")
    b_init: Any = {nn}.initializers.zeros

    @{nn}.compact
    def __call__(self, inputs, state):
        hidden_size = self.hidden_size
        w_i = self.param("w_i", self.w_i_init, [inputs.shape[-1], 3 * hidden_size], inputs.dtype)
        w_h = self.param("w_h", self.w_h_init, [hidden_size, 3 * hidden_size], inputs.dtype)
        b = self.param("b", self.b_init, [3 * hidden_size], inputs.dtype)
        w_h_z, w_h_a = {jnp}.split(w_h, indices_or_sections=[2 * hidden_size], axis=1)
        b_z, b_a = {jnp}.split(b, indices_or_sections=[2 * hidden_size], axis=0)
        zr_x, a_x = {jnp}.split({jnp}.matmul(inputs, w_i), indices_or_sections=[2 * hidden_size], axis=-1)
        zr_h = {jnp}.matmul(state, w_h_z)
        z, r = {jnp}.split(jax.nn.sigmoid(zr_x + zr_h + {jnp}.broadcast_to(b_z, zr_h.shape)), indices_or_sections=2, axis=-1)
        a_h = {jnp}.matmul(r * state, w_h_a)
        a = {jnp}.tanh(a_x + a_h + {jnp}.broadcast_to(b_a, a_h.shape))
        next_state = (1 - z) * state + z * a
        return next_state, next_state

    def initial_state(self, batch_size):
        state = {jnp}.zeros([self.hidden_size])
        return state if batch_size is None else %s
''' % _ADD_BATCH

VANILLA_RNN_SOURCE = '''class VanillaRNN({nn}.Module):
    """Haiku's hk.VanillaRNN: relu(linear(x) + linear_1(h)), two biases unless double_bias=False."""

    hidden_size: int
    double_bias: bool = True

    @{nn}.compact
    def __call__(self, inputs, prev_state):
        input_to_hidden = {nn}.Dense(self.hidden_size, kernel_init=%s, name="linear")
        hidden_to_hidden = {nn}.Dense(
            self.hidden_size, use_bias=self.double_bias, kernel_init=%s, name="linear_1"
        )
        out = jax.nn.relu(input_to_hidden(inputs) + hidden_to_hidden(prev_state))
        return out, out

    def initial_state(self, batch_size):
        state = {jnp}.zeros([self.hidden_size])
        return state if batch_size is None else %s
''' % (_HAIKU_LINEAR_INIT, _HAIKU_LINEAR_INIT, _ADD_BATCH)

DYNAMIC_UNROLL_SOURCE = '''def dynamic_unroll(core, input_sequence, initial_state, time_major=True, reverse=False, return_all_states=False, unroll=1):
    """Haiku's hk.dynamic_unroll for a Linen core: nn.scan over time, parameters shared by every step."""

    def step(cell, prev_state, inputs):
        outputs, next_state = cell(inputs, prev_state)
        return next_state, ((outputs, next_state) if return_all_states else outputs)

    def swap(tree):
        return jax.tree.map(lambda x: {jnp}.swapaxes(x, 0, 1), tree)

    if not time_major:
        input_sequence = swap(input_sequence)
    scan = {nn}.scan(step, variable_broadcast="params", split_rngs={{"params": False}}, reverse=reverse, unroll=unroll)
    last_state, output_sequence = scan(core, initial_state, input_sequence)
    if return_all_states:
        output_sequence, last_state = output_sequence
    if not time_major:
        output_sequence = swap(output_sequence)
        last_state = swap(last_state) if return_all_states else last_state
    return output_sequence, last_state
'''

STATIC_UNROLL_SOURCE = '''def static_unroll(core, input_sequence, initial_state, time_major=True):
    """Haiku's hk.static_unroll for a Linen core: a Python loop over the time steps."""
    time_axis = 0 if time_major else 1
    leaves, treedef = jax.tree.flatten(input_sequence)
    steps = [{jnp}.unstack(x, axis=time_axis) for x in leaves]
    state, output_sequence = initial_state, []
    for t in range(leaves[0].shape[time_axis]):
        outputs, state = core(jax.tree.unflatten(treedef, [x[t] for x in steps]), state)
        output_sequence.append(outputs)
    return jax.tree.map(lambda *xs: {jnp}.stack(xs, axis=time_axis), *output_sequence), state
'''

DEEP_RNN = Signature("hk.DeepRNN", ("layers", "name"))
RESET_CORE = Signature("hk.ResetCore", ("core", "name"))
IDENTITY_CORE = Signature("hk.IdentityCore", ("name",))

DEEP_RNN_SOURCE = '''class DeepRNN({nn}.Module):
    """Haiku's hk.DeepRNN: cores and plain callables in sequence; the state is a tuple of the cores' states."""

    layers: Sequence[Any]
    skip_connections: bool = False

    def __call__(self, inputs, state):
        current_inputs = inputs
        next_states = []
        outputs = []
        state_idx = 0
        for idx, layer in enumerate(self.layers):
            if self.skip_connections and idx > 0:
                current_inputs = jax.tree.map(
                    lambda x, *args: None if x is None else {jnp}.concatenate((x,) + args, axis=-1),
                    inputs,
                    current_inputs,
                    is_leaf=lambda x: x is None,
                )
            if hasattr(layer, "initial_state"):  # Haiku: isinstance(layer, hk.RNNCore)
                current_inputs, next_state = layer(current_inputs, state[state_idx])
                outputs.append(current_inputs)
                next_states.append(next_state)
                state_idx += 1
            else:
                current_inputs = layer(current_inputs)
        if self.skip_connections:
            out = jax.tree.map(lambda *args: {jnp}.concatenate(args, axis=-1), *outputs)
        else:
            out = current_inputs
        return out, tuple(next_states)

    def initial_state(self, batch_size):
        return tuple(layer.initial_state(batch_size) for layer in self.layers if hasattr(layer, "initial_state"))
'''

DEEP_RNN_SKIP_SOURCE = '''def deep_rnn_with_skip_connections(layers, name=None):
    """Haiku's hk.deep_rnn_with_skip_connections: layer i > 0 reads [inputs, outputs of layer i - 1]; outputs concatenated."""
    for layer in layers:
        if not hasattr(layer, "initial_state"):
            raise ValueError(f"skip_connections requires for all layers to be `hk.RNNCore`s. Layers is: {{layers}}")
    return DeepRNN(layers, skip_connections=True, name=name)
'''

RESET_CORE_SOURCE = '''class ResetCore({nn}.Module):
    """Haiku's hk.ResetCore: inputs are (inputs, should_reset); state entries where should_reset is true restart from the core's initial_state."""

    core: Any

    def __call__(self, inputs, state):
        inputs, should_reset = inputs
        inputs = jax.tree.map({jnp}.asarray, inputs)
        should_reset = jax.tree.map({jnp}.asarray, should_reset)
        state = jax.tree.map({jnp}.asarray, state)
        if jax.tree_util.treedef_is_leaf(jax.tree.structure(should_reset)):
            should_reset = jax.tree.map(lambda _: should_reset, state)
        should_reset = jax.tree.map(self._conform, should_reset, state)
        batch_size = jax.tree.leaves(inputs)[0].shape[0] if self._is_batched(state) else None
        initial_state = jax.tree.map(lambda s, i: i.astype(s.dtype), state, self.initial_state(batch_size))
        state = jax.tree.map({jnp}.where, should_reset, initial_state, state)
        return self.core(inputs, state)

    def initial_state(self, batch_size):
        return self.core.initial_state(batch_size)

    @staticmethod
    def _conform(should_reset, state):
        # Pads on the right so that a [batch] signal resets whole batch entries.
        if should_reset.shape == state.shape[: should_reset.ndim]:
            return {jnp}.reshape(should_reset, should_reset.shape + (1,) * (state.ndim - should_reset.ndim))
        raise ValueError(f"should_reset signal shape {{should_reset.shape}} is not compatible with state shape {{state.shape}}")

    def _is_batched(self, state):
        state = jax.tree.leaves(state)
        if not state:  # an empty state is treated as unbatched
            return False
        batched = jax.tree.leaves(self.initial_state(batch_size=1))
        return all(b.shape[1:] == s.shape[1:] for b, s in zip(batched, state))
'''

IDENTITY_CORE_SOURCE = '''class IdentityCore({nn}.Module):
    """Haiku's hk.IdentityCore: forwards the inputs, with an empty state."""

    def __call__(self, inputs, state):
        return inputs, state

    def initial_state(self, batch_size):
        return ()
'''

_ANY = ImportSpec("typing", "Any", None)
_TYPING = (_ANY, ImportSpec("typing", "NamedTuple", None))
#: Haiku name -> (emitted name, source template, imports).
HELPERS: dict[str, tuple[str, str, tuple[ImportSpec, ...]]] = {
    "LSTM": ("LSTM", LSTM_SOURCE, (JAX_IMPORT,)),
    "LSTMState": ("LSTMState", LSTM_STATE_SOURCE, _TYPING),
    "GRU": ("GRU", GRU_SOURCE, (JAX_IMPORT, ImportSpec("typing", "Any", None))),
    "VanillaRNN": ("VanillaRNN", VANILLA_RNN_SOURCE, (JAX_IMPORT,)),
    **{tail: ("ConvLSTM", CONV_LSTM_SOURCE, (JAX_IMPORT, ImportSpec("typing", "Any", None))) for tail in CONV_LSTM_DIMS},
    "dynamic_unroll": ("dynamic_unroll", DYNAMIC_UNROLL_SOURCE, (JAX_IMPORT,)),
    "static_unroll": ("static_unroll", STATIC_UNROLL_SOURCE, (JAX_IMPORT,)),
    "DeepRNN": ("DeepRNN", DEEP_RNN_SOURCE, (JAX_IMPORT, _ANY, ImportSpec("typing", "Sequence", None))),
    "deep_rnn_with_skip_connections": ("deep_rnn_with_skip_connections", DEEP_RNN_SKIP_SOURCE, ()),
    "ResetCore": ("ResetCore", RESET_CORE_SOURCE, (JAX_IMPORT, _ANY)),
    "IdentityCore": ("IdentityCore", IDENTITY_CORE_SOURCE, ()),
    # hk.EMAParamsTree (ema_tree.py) registers through these tables, which the shared
    # files (layers.py, base.py) already read, so that no shared file needs editing.
    **ema_tree.HELPERS,
}
#: Helpers another helper refers to.
DEPENDENCIES = {
    "LSTM": ("LSTMState",),
    **{tail: ("LSTMState",) for tail in CONV_LSTM_DIMS},
    "deep_rnn_with_skip_connections": ("DeepRNN",),
    **ema_tree.DEPENDENCIES,
}


#: Templates with no ``{nn}``/``{jnp}`` placeholders (their braces are literal).
_UNFORMATTED = (LSTM_STATE_SOURCE,)


def helper_source(tail: str, *, nn: str, jnp: str) -> tuple[str, str, tuple[ImportSpec, ...]] | None:
    """``(name, source, imports)`` of the helper emitted for ``haiku.<tail>``, else None."""
    found = HELPERS.get(tail)
    if found is None:
        return None
    name, template, imports = found
    source = template if template in _UNFORMATTED else template.format(nn=nn, jnp=jnp)
    return name, source, imports


def lstm(bound: Bound, ctx: Ctx) -> Rewrite | Unsupported:
    """``hk.LSTM(h)`` -> ``LSTM(h)`` (the exact helper)."""
    if "hidden_size" not in bound:
        return Unsupported("hk.LSTM needs hidden_size")
    return Rewrite(flax_call("LSTM", [(None, code(bound["hidden_size"])), *name_arg(bound, ctx.name)]))


def vanilla_rnn(bound: Bound, ctx: Ctx) -> Rewrite | Unsupported:
    """``hk.VanillaRNN(h, double_bias)`` -> ``VanillaRNN(h, double_bias=...)``."""
    if "hidden_size" not in bound:
        return Unsupported("hk.VanillaRNN needs hidden_size")
    args: Args = [(None, code(bound["hidden_size"]))]
    if "double_bias" in bound and literal(bound["double_bias"]) is not True:
        args.append(("double_bias", code(bound["double_bias"])))
    return Rewrite(flax_call("VanillaRNN", args + name_arg(bound, ctx.name)))


def gru(bound: Bound, ctx: Ctx) -> Rewrite | Unsupported:
    """``hk.GRU(h, w_i_init, w_h_init, b_init)`` -> ``GRU(h, ...)`` with converted initializers."""
    if "hidden_size" not in bound:
        return Unsupported("hk.GRU needs hidden_size")
    args: Args = [(None, code(bound["hidden_size"]))]
    imports: tuple[ImportSpec, ...] = ()
    for key in ("w_i_init", "w_h_init", "b_init"):
        converted = init_arg(bound, key, key, ctx)
        if isinstance(converted, Unsupported):
            return converted
        args += converted[0]
        imports = merge_imports(imports, converted[1])
    return Rewrite(flax_call("GRU", args + name_arg(bound, ctx.name)), imports)


def conv_lstm(bound: Bound, ctx: Ctx, tail: str) -> Rewrite | Unsupported:
    """``hk.Conv2DLSTM(input_shape, output_channels, kernel_shape)`` -> ``ConvLSTM(2, ...)`` (the exact helper)."""
    if not all(k in bound for k in ("input_shape", "output_channels", "kernel_shape")):
        return Unsupported(f"hk.{tail} needs input_shape, output_channels and kernel_shape")
    args: Args = [(None, str(CONV_LSTM_DIMS[tail]))] + [(None, code(bound[k])) for k in ("input_shape", "output_channels", "kernel_shape")]
    return Rewrite(flax_call("ConvLSTM", args + name_arg(bound, ctx.name)))


def deep_rnn(bound: Bound, ctx: Ctx) -> Rewrite | Unsupported:
    """``hk.DeepRNN(layers)`` -> ``DeepRNN(layers)`` (the exact helper; the layers keep their own names)."""
    if "layers" not in bound:
        return Unsupported("hk.DeepRNN needs layers")
    return Rewrite(flax_call("DeepRNN", [(None, code(bound["layers"])), *name_arg(bound, ctx.name)]))


def reset_core(bound: Bound, ctx: Ctx) -> Rewrite | Unsupported:
    """``hk.ResetCore(core)`` -> ``ResetCore(core)`` (the exact helper)."""
    if "core" not in bound:
        return Unsupported("hk.ResetCore needs core")
    return Rewrite(flax_call("ResetCore", [(None, code(bound["core"])), *name_arg(bound, ctx.name)]))


def identity_core(bound: Bound, ctx: Ctx) -> Rewrite | Unsupported:
    """``hk.IdentityCore()`` -> ``IdentityCore()`` (the exact helper)."""
    return Rewrite(flax_call("IdentityCore", name_arg(bound, ctx.name)))


#: Haiku core combinators -> (signature, handler), registered in ``layers.LAYERS``.
COMBINATORS = {
    "DeepRNN": (DEEP_RNN, deep_rnn),
    "ResetCore": (RESET_CORE, reset_core),
    "IdentityCore": (IDENTITY_CORE, identity_core),
    **ema_tree.LAYERS,
}
