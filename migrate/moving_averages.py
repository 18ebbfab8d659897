"""``hk.ExponentialMovingAverage`` -> an exact Linen port (emitted once per file).

Linen has no EMA module and ``nn.BatchNorm``'s running average is a plain EMA;
Haiku's is zero-debiased (``average = hidden / (1 - decay**counter)``) with an
optional warm-up. The emitted ``ExponentialMovingAverage`` keeps Haiku's state
leaves ``counter``, ``hidden`` and ``average`` in the ``"state"`` collection
(same names, same shapes: a checkpoint's state converts by copying), Haiku's
update rule, and Haiku's ``init`` semantics: ``counter``/``hidden`` stay at their
initial values (created by ``get_state``), ``average`` holds the first value
(created by ``set_state``). The call ``ema(value, update_stats=True)`` and the
``average`` property are unchanged; ``initialize(shape, dtype)`` creates
``hidden`` and ``average`` as zeros unless they exist, as Haiku's does (so an
``init`` after ``initialize`` keeps ``average`` at zeros, as Haiku's does). The
``collection`` field names the Linen collection; the emitted ``BatchNorm``
(``layers_batchnorm.py``) keeps its ``mean_ema`` / ``var_ema`` in ``"batch_stats"``.

Example::

    hk.ExponentialMovingAverage(0.99, zero_debias=False)
        -> ExponentialMovingAverage(0.99, zero_debias=False, name="exponential_moving_average")
"""

from __future__ import annotations

from flaxify.migrate.layers_common import Bound, Ctx, Signature, code, flax_call, literal, name_arg
from flaxify.migrate.layers_linear import Args
from flaxify.migrate.rewrite import JAX_IMPORT, Rewrite, Unsupported

EMA = Signature("hk.ExponentialMovingAverage", ("decay", "zero_debias", "warmup_length", "name"))

CLASS_SOURCE = '''class ExponentialMovingAverage({nn}.Module):
    """Haiku's hk.ExponentialMovingAverage: counter/hidden/average in `collection` ("state" unless told), zero-debiased update."""

    decay: float
    zero_debias: bool = True
    warmup_length: int = 0
    collection: str = "state"

    @{nn}.compact
    def __call__(self, value, update_stats=True):
        value = {jnp}.asarray(value)
        counter = self.variable(self.collection, "counter", lambda: {jnp}.full((), -self.warmup_length, {jnp}.int32))
        hidden = self.variable(self.collection, "hidden", {jnp}.zeros, value.shape, value.dtype)
        count = counter.value + 1
        decay = jax.lax.convert_element_type(self.decay, value.dtype)
        if self.warmup_length > 0:
            decay = jax.lax.select(count <= 0, 0.0, decay)
        one = {jnp}.ones([], value.dtype)
        new_hidden = hidden.value * decay + value * (one - decay)
        average = new_hidden
        if self.zero_debias:
            average /= one - {jnp}.power(decay, count)
        if update_stats:
            if not self.is_initializing():  # Haiku's init keeps get_state entries at their initial values
                counter.value = count
                hidden.value = new_hidden
                self.put_variable(self.collection, "average", average)
            elif not self.has_variable(self.collection, "average"):  # ... and records what set_state creates
                self.put_variable(self.collection, "average", average)
        return average

    def initialize(self, shape, dtype={jnp}.float32):
        """Haiku's ``initialize``: ``hidden`` and ``average`` start as zeros of ``shape`` unless they exist."""
        if hasattr(shape, "shape"):  # a value instead of a shape (deprecated in Haiku, still accepted)
            shape, dtype = shape.shape, shape.dtype
        for name in ("hidden", "average"):
            if not self.has_variable(self.collection, name):
                self.put_variable(self.collection, name, {jnp}.zeros(shape, dtype))

    @property
    def average(self):
        return self.get_variable(self.collection, "average")
'''

CLASS_IMPORTS = (JAX_IMPORT,)


def class_source(nn: str = "nn", jnp: str = "jnp") -> str:
    return CLASS_SOURCE.format(nn=nn, jnp=jnp)


def exponential_moving_average(bound: Bound, ctx: Ctx) -> Rewrite | Unsupported:
    """``hk.ExponentialMovingAverage(decay, zero_debias, warmup_length)`` -> the exact helper."""
    if "decay" not in bound:
        return Unsupported("hk.ExponentialMovingAverage needs decay")
    args: Args = [(None, code(bound["decay"]))]
    if "zero_debias" in bound and literal(bound["zero_debias"]) is not True:
        args.append(("zero_debias", code(bound["zero_debias"])))
    if "warmup_length" in bound and literal(bound["warmup_length"]) != 0:
        args.append(("warmup_length", code(bound["warmup_length"])))
    return Rewrite(flax_call("ExponentialMovingAverage", args + name_arg(bound, ctx.name)))
