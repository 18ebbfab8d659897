"""``hk.BatchNorm`` -> an exact Linen port (emitted once per file), training dynamics included.

``nn.BatchNorm`` normalises like Haiku but keeps a plain EMA of the batch
statistics from mean 0 / var 1 and skips the update during ``init``; Haiku keeps
two zero-debiased :class:`hk.ExponentialMovingAverage` modules, ``mean_ema`` and
``var_ema``, that record the init batch. The emitted ``BatchNorm`` computes
exactly what ``haiku/_src/batch_norm.py`` computes:

* batch mean and mean of squares over the reduced axes (``keepdims``), averaged
  across ``cross_replica_axis`` (and its index groups) with ``jax.lax.pmean``,
  ``var = mean_sq - mean**2``, then ``(x - mean) * (scale * rsqrt(var + eps)) + offset``;
* ``is_training`` / ``test_local_stats`` as in Haiku; in training the two EMAs
  (the emitted ``ExponentialMovingAverage``, ``moving_averages.py``) update with
  Haiku's debiased rule, and during ``init`` keep Haiku's initial state;
* ``axis`` (the axes *reduced*, Haiku's meaning), ``data_format`` (any layout
  ``hk.get_channel_index`` accepts), ``scale_init`` / ``offset_init`` (converted
  to Flax initializers), ``scale`` / ``offset`` given at call time.

Its fields are Haiku's keyword names, so arguments are copied as written (a
run-time ``**bn_config`` of Haiku keywords passes through unchanged) and the
call ``bn(x, is_training, test_local_stats=...)`` is unchanged. Variables keep
Haiku's leaves and shapes: ``params: {scale, offset}`` of shape ``(1, ..., C)``
and ``batch_stats: {mean_ema, var_ema: {counter, hidden, average}}``, so a
checkpoint converts by copying.

Examples::

    hk.BatchNorm(True, True, 0.9)               -> BatchNorm(True, True, 0.9, name="batch_norm")
    hk.BatchNorm(True, False, 0.99, scale_init=hk.initializers.Constant(2.0), data_format="NCHW")
        -> BatchNorm(True, False, 0.99, scale_init=nn.initializers.constant(2.0), data_format="NCHW", ...)
    hk.BatchNorm(name="bn", **bn_config)        -> BatchNorm(name="bn", **bn_config)
    bn(x, is_training=training)                 -> bn(x, is_training=training)
"""

from __future__ import annotations

import libcst as cst

from flaxify.migrate.layers_common import Ctx, Signature
from flaxify.migrate.layers_helpers import helper_call
from flaxify.migrate.rewrite import JAX_IMPORT, ImportSpec, Rewrite, Unsupported

BATCH_NORM = Signature(
    "hk.BatchNorm",
    (
        "create_scale", "create_offset", "decay_rate", "eps", "scale_init", "offset_init", "axis",
        "cross_replica_axis", "cross_replica_axis_index_groups", "data_format", "name",
    ),
)  # fmt: skip

#: Haiku arguments holding an initializer: converted to a Flax initializer.
_INITIALIZERS = ("scale_init", "offset_init")

CLASS_SOURCE = '''class BatchNorm({nn}.Module):
    """Haiku's hk.BatchNorm: batch statistics, scale * rsqrt(var + eps), zero-debiased mean_ema/var_ema in "batch_stats"."""

    create_scale: bool
    create_offset: bool
    decay_rate: float
    eps: float = 1e-5
    scale_init: Any = None
    offset_init: Any = None
    axis: Any = None
    cross_replica_axis: Any = None
    cross_replica_axis_index_groups: Any = None
    data_format: str = "channels_last"

    @{nn}.compact
    def __call__(self, inputs, is_training, test_local_stats=False, scale=None, offset=None):
        if self.create_scale and scale is not None:
            raise ValueError("Cannot pass `scale` at call time if `create_scale=True`.")
        if self.create_offset and offset is not None:
            raise ValueError("Cannot pass `offset` at call time if `create_offset=True`.")
        mean_ema = ExponentialMovingAverage(self.decay_rate, collection="batch_stats", name="mean_ema")
        var_ema = ExponentialMovingAverage(self.decay_rate, collection="batch_stats", name="var_ema")
        channel_index = get_channel_index(self.data_format)
        if channel_index < 0:
            channel_index += inputs.ndim
        axis = self.axis if self.axis is not None else [i for i in range(inputs.ndim) if i != channel_index]
        if is_training or test_local_stats:
            mean = {jnp}.mean(inputs, axis, keepdims=True)
            mean_of_squares = {jnp}.mean({jnp}.square(inputs), axis, keepdims=True)
            if self.cross_replica_axis:
                groups = self.cross_replica_axis_index_groups
                mean = jax.lax.pmean(mean, axis_name=self.cross_replica_axis, axis_index_groups=groups)
                mean_of_squares = jax.lax.pmean(mean_of_squares, axis_name=self.cross_replica_axis, axis_index_groups=groups)
            var = mean_of_squares - {jnp}.square(mean)
        else:
            mean = mean_ema.average.astype(inputs.dtype)
            var = var_ema.average.astype(inputs.dtype)
        if is_training:
            mean_ema(mean)
            var_ema(var)
        w_shape = [1 if i in axis else inputs.shape[i] for i in range(inputs.ndim)]
        if self.create_scale:
            scale = self.param("scale", self.scale_init or {nn}.initializers.ones, w_shape, inputs.dtype)
        elif scale is None:
            scale = {jnp}.ones([], inputs.dtype)
        if self.create_offset:
            offset = self.param("offset", self.offset_init or {nn}.initializers.zeros, w_shape, inputs.dtype)
        elif offset is None:
            offset = {jnp}.zeros([], inputs.dtype)
        eps = jax.lax.convert_element_type(self.eps, var.dtype)
        inv = scale * jax.lax.rsqrt(var + eps)
        return (inputs - mean) * inv + offset
'''

CLASS_IMPORTS = (JAX_IMPORT, ImportSpec("typing", "Any", None))

CHANNEL_INDEX_SOURCE = '''def get_channel_index(data_format):
    """Haiku's hk.get_channel_index: 1 for channels-first layouts, -1 for channels-last ones."""
    if data_format == "channels_first" or re.match("^NC[^C]*$", data_format):
        return 1
    if data_format == "channels_last" or re.match("^N[^C]*C$|^((BT)|(TB))[^D]*D$", data_format):
        return -1
    raise ValueError(f"Unable to extract channel information from {{data_format!r}}.")
'''

CHANNEL_INDEX_IMPORTS = (ImportSpec("re", None, None),)

#: Helpers the emitted ``BatchNorm`` refers to.
DEPENDENCIES = {"BatchNorm": ("ExponentialMovingAverage", "get_channel_index")}


def class_source(nn: str = "nn", jnp: str = "jnp") -> str:
    """The emitted ``BatchNorm`` with the file's local names for ``flax.linen`` and ``jax.numpy``."""
    return CLASS_SOURCE.format(nn=nn, jnp=jnp)


def channel_index_source() -> str:
    """The emitted ``get_channel_index`` (shared by ``BatchNorm`` and the ``DepthwiseConv*D`` helpers)."""
    return CHANNEL_INDEX_SOURCE.format()


def batch_norm(call: cst.Call, ctx: Ctx) -> Rewrite | Unsupported:
    """``hk.BatchNorm(...)`` -> ``BatchNorm(...)`` (the exact helper), arguments as written."""
    return helper_call(call, BATCH_NORM, "BatchNorm", _INITIALIZERS, ctx, required=("create_scale", "create_offset", "decay_rate"))


