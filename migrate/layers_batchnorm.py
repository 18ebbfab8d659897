"""``hk.BatchNorm`` -> ``nn.BatchNorm``, constructor and call.

Argument mapping: ``create_scale`` -> ``use_scale``, ``create_offset`` ->
``use_bias``, ``decay_rate`` -> ``momentum`` (same meaning), ``eps`` ->
``epsilon`` (both default 1e-5), ``scale_init``/``offset_init`` ->
``scale_init``/``bias_init``, ``cross_replica_axis`` -> ``axis_name``,
``cross_replica_axis_index_groups`` -> ``axis_index_groups``, channels-first
``data_format`` -> ``axis=1``. The call's ``is_training`` becomes
``use_running_average=not is_training``.

Normalisation is bit-identical (same one-pass variance, same
``(x - mean) * (rsqrt(var + eps) * scale) + offset``). The running statistics
are not: Haiku keeps a zero-debiased EMA (``hidden``, ``counter``) and records
the init batch's statistics, Flax keeps a plain EMA from mean 0 / var 1 and
does not update during ``init``. Evaluation with converted statistics
(``average`` -> ``mean``/``var``) is exact; the first ~``1/(1-decay_rate)``
training steps move the statistics differently. The rewrite says so in a TODO.

Haiku's ``axis`` (the axes *reduced*) is the complement of Flax's ``axis`` (the
feature axes *kept*) and depends on the input rank, so an explicit ``axis`` is
not rewritten; neither are ``test_local_stats``, ``scale`` and ``offset``
given at call time.

Examples::

    hk.BatchNorm(True, True, 0.9)                    -> nn.BatchNorm(momentum=0.9)
    hk.BatchNorm(False, True, 0.99, eps=1e-3, data_format="NCHW")
        -> nn.BatchNorm(momentum=0.99, epsilon=1e-3, use_scale=False, axis=1)
    bn(x, is_training=training)                      -> bn(x, use_running_average=not training)
"""

from __future__ import annotations

from collections.abc import Sequence

import libcst as cst

from flaxify.migrate.layers_common import UNKNOWN, Bound, Ctx, Signature, bind, code, flax_call, literal, name_arg
from flaxify.migrate.layers_linear import Args, flag_arg, init_arg
from flaxify.migrate.rewrite import Rewrite, Unsupported, merge_imports

BATCH_NORM = Signature(
    "hk.BatchNorm",
    (
        "create_scale", "create_offset", "decay_rate", "eps", "scale_init", "offset_init", "axis",
        "cross_replica_axis", "cross_replica_axis_index_groups", "data_format", "name",
    ),
)
BATCH_NORM_CALL = Signature("hk.BatchNorm(...)", ("inputs", "is_training", "test_local_stats", "scale", "offset"))

EMA_NOTE = (
    "nn.BatchNorm keeps a plain EMA of the batch statistics and skips the update during init, Haiku a"
    " zero-debiased one (hidden/counter) that records the init batch: evaluation with converted statistics"
    " is exact, but the first ~1/(1-decay_rate) training steps move the statistics differently; port"
    " Haiku's debiased EMA into a self.variable if those steps matter"
)


def _feature_axis(bound: Bound) -> Args | Unsupported:
    if "data_format" not in bound:
        return []
    value = literal(bound["data_format"])
    if value == "channels_last" or (isinstance(value, str) and value.startswith("N") and value.endswith("C")):
        return []
    if value == "channels_first" or (isinstance(value, str) and value.startswith("NC")):
        return [("axis", "1")]
    return Unsupported(f"hk.BatchNorm(data_format={code(bound['data_format'])}): not a literal layout; set nn.BatchNorm(axis=...) by hand")


def batch_norm(bound: Bound, ctx: Ctx) -> Rewrite | Unsupported:
    """``hk.BatchNorm(...)`` -> ``nn.BatchNorm(momentum=..., ...)``."""
    if not all(k in bound for k in ("create_scale", "create_offset", "decay_rate")):
        return Unsupported("hk.BatchNorm needs create_scale, create_offset and decay_rate")
    if "axis" in bound and literal(bound["axis"]) is not None:
        return Unsupported(
            f"hk.BatchNorm(axis={code(bound['axis'])}): Haiku names the axes reduced, Flax the feature axes kept"
            " (the complement, which depends on the input rank); set nn.BatchNorm(axis=<feature axes>) by hand"
        )
    axis = _feature_axis(bound)
    if isinstance(axis, Unsupported):
        return axis
    scale = init_arg(bound, "scale_init", "scale_init", ctx)
    offset = init_arg(bound, "offset_init", "bias_init", ctx)
    if isinstance(scale, Unsupported):
        return scale
    if isinstance(offset, Unsupported):
        return offset
    args: Args = [("momentum", code(bound["decay_rate"]))]
    if "eps" in bound:
        args.append(("epsilon", code(bound["eps"])))
    args += flag_arg(bound, "create_scale", "use_scale") + flag_arg(bound, "create_offset", "use_bias")
    args += scale[0] + offset[0] + axis
    for haiku_key, flax_key in (("cross_replica_axis", "axis_name"), ("cross_replica_axis_index_groups", "axis_index_groups")):
        if haiku_key in bound and literal(bound[haiku_key]) is not None:
            args.append((flax_key, code(bound[haiku_key])))
    args += name_arg(bound, ctx.name)
    return Rewrite(flax_call(f"{ctx.nn}.BatchNorm", args), merge_imports(scale[1], offset[1]), note=EMA_NOTE)


def call_args(args: Sequence[cst.Arg]) -> list[cst.Arg] | Unsupported:
    """The call ``bn(x, is_training)`` -> ``bn(x, use_running_average=not is_training)``."""
    bound = bind(cst.Call(cst.Name("bn"), args=list(args)), BATCH_NORM_CALL)
    if isinstance(bound, Unsupported):
        return bound
    extra = [k for k in ("test_local_stats", "scale", "offset") if k in bound and literal(bound[k]) not in (None, False)]
    if extra:
        return Unsupported(
            f"hk.BatchNorm called with {', '.join(extra)}: nn.BatchNorm has no such call argument"
            " (test_local_stats=True is use_running_average=False with the update discarded)"
        )
    if "inputs" not in bound or "is_training" not in bound:
        return Unsupported("hk.BatchNorm is called without inputs or is_training")
    return [cst.Arg(bound["inputs"]), _use_running_average(bound["is_training"])]


def _use_running_average(is_training: cst.BaseExpression) -> cst.Arg:
    value = literal(is_training)
    if isinstance(value, bool):
        text = str(not value)
    elif value is UNKNOWN and isinstance(is_training, cst.UnaryOperation) and isinstance(is_training.operator, cst.Not):
        text = code(is_training.expression)
    else:
        inner = code(is_training)
        simple = isinstance(is_training, (cst.Name, cst.Attribute, cst.Call, cst.Subscript))
        text = f"not {inner}" if simple else f"not ({inner})"
    return cst.Arg(
        cst.parse_expression(text),
        keyword=cst.Name("use_running_average"),
        equal=cst.AssignEqual(cst.SimpleWhitespace(""), cst.SimpleWhitespace("")),
    )
