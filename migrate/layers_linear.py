"""``hk.Linear`` -> ``nn.Dense`` and ``hk.Embed`` -> ``nn.Embed``.

Haiku's defaults that change numbers are written out explicitly:

* ``hk.Linear`` draws ``w`` from ``TruncatedNormal(1 / sqrt(fan_in))``; Flax's
  default ``lecun_normal`` is 13.7% wider, so ``kernel_init`` is always emitted.
* ``hk.Embed`` draws its table from ``TruncatedNormal(stddev=1)``; Flax's default
  is ``variance_scaling(1, "fan_in", "normal", out_axis=0)``.
* Haiku takes ``precision=`` when the layer is *called*; Flax at construction
  (see ``rewrite_layer_call`` in ``layers.py``).

Examples::

    hk.Linear(10)                   -> nn.Dense(10, kernel_init=nn.initializers.variance_scaling(
                                         0.87962566103423978**2, "fan_in", "truncated_normal"), name="linear")
    hk.Linear(10, with_bias=False, w_init=hk.initializers.Constant(1.0))
                                    -> nn.Dense(10, use_bias=False, kernel_init=nn.initializers.constant(1.0))
    hk.Embed(100, 16)               -> nn.Embed(100, 16, embedding_init=nn.initializers.truncated_normal(1.0))
    hk.Embed(embedding_matrix=m)    -> nn.Embed(m.shape[0], m.shape[1], embedding_init=lambda *_: jnp.asarray(m))
    hk.Bias(bias_dims=[-1])         -> Bias(bias_dims=[-1])   # a small Linen module emitted once per file

Flax has no Bias layer: ``BIAS_CLASS_SOURCE`` (see :func:`bias_class_source`) is a
Linen module reproducing ``hk.Bias`` exactly, parameter ``b`` and its shape included.

Known difference kept as is: for ids outside ``[0, vocab_size)`` Haiku clamps to
the last row while ``nn.Embed`` returns NaN; both document such ids as invalid.
"""

from __future__ import annotations

from flaxify.migrate.initializers import FIELD_INITIALIZER, default_kernel_init, field_or_default, rewrite_initializer
from flaxify.migrate.layers_common import (
    Bound,
    Ctx,
    Signature,
    code,
    flax_call,
    is_literal,
    is_simple_ref,
    literal,
    name_arg,
    resolve,
)
from flaxify.migrate.rewrite import ImportSpec, Rewrite, Unsupported, merge_imports

Args = list[tuple[str | None, str]]

LINEAR = Signature("hk.Linear", ("output_size", "with_bias", "w_init", "b_init", "name"))
EMBED = Signature(
    "hk.Embed",
    ("vocab_size", "embed_dim", "embedding_matrix", "w_init", "lookup_style", "name", "precision"),
)


def init_arg(
    bound: Bound, haiku_key: str, flax_key: str, ctx: Ctx, default: str | None = None
) -> tuple[Args, tuple[ImportSpec, ...]] | Unsupported:
    """``flax_key=<converted initializer>``; ``default`` (source) when Haiku's is unset.

    A Haiku initializer left at ``None`` means the layer's default, so a literal
    ``None`` counts as unset.
    """
    if haiku_key not in bound or literal(bound[haiku_key]) is None:
        return ([(flax_key, default)] if default else [], ())
    if resolve(bound[haiku_key], ctx.resolver) == FIELD_INITIALIZER:
        # A module field holding a Flax initializer or None (init_fields.py).
        chosen = field_or_default(code(bound[haiku_key]), flax_key, default, nn=ctx.nn)
        if chosen is not None:
            return [(flax_key, chosen)], ()
        return Unsupported(
            f"{haiku_key}: `{code(bound[haiku_key])}` is a field that may be None (the layer's default), and "
            f"flaxify does not know this layer's default for {flax_key}: pass an initializer explicitly"
        )
    result = rewrite_initializer(bound[haiku_key], None, nn=ctx.nn, jnp=ctx.jnp, resolver=ctx.resolver)
    if isinstance(result, Unsupported):
        return Unsupported(f"{haiku_key}: {result.reason}")
    return [(flax_key, code(result.expr))], result.imports


def flag_arg(bound: Bound, haiku_key: str, flax_key: str, default: bool = True) -> Args:
    """``flax_key=<value>`` unless Haiku's flag is absent or its (shared) default."""
    return [] if is_literal(bound, haiku_key, default) else [(flax_key, code(bound[haiku_key]))]


def linear(bound: Bound, ctx: Ctx) -> Rewrite | Unsupported:
    """``hk.Linear(output_size, with_bias, w_init, b_init, name)`` -> ``nn.Dense``."""
    if "output_size" not in bound:
        return Unsupported("hk.Linear needs output_size")
    w = init_arg(bound, "w_init", "kernel_init", ctx, default_kernel_init(ctx.nn))
    b = init_arg(bound, "b_init", "bias_init", ctx)
    for result in (w, b):
        if isinstance(result, Unsupported):
            return result
    args: Args = [(None, code(bound["output_size"]))]
    args += flag_arg(bound, "with_bias", "use_bias") + w[0] + b[0] + list(ctx.extra)
    return Rewrite(flax_call(f"{ctx.nn}.Dense", args + name_arg(bound, ctx.name)), merge_imports(w[1], b[1]))


def _lookup_style_ok(bound: Bound, ctx: Ctx) -> bool:
    if "lookup_style" not in bound:
        return True
    value = literal(bound["lookup_style"])
    if isinstance(value, str):
        return value.upper() == "ARRAY_INDEX"
    return code(bound["lookup_style"]).endswith("EmbedLookupStyle.ARRAY_INDEX")


def _embed_sizes(bound: Bound) -> tuple[str, str] | Unsupported:
    if "vocab_size" in bound and "embed_dim" in bound:
        return code(bound["vocab_size"]), code(bound["embed_dim"])
    matrix = bound.get("embedding_matrix")
    if matrix is None or not is_simple_ref(matrix):
        return Unsupported("hk.Embed: pass vocab_size and embed_dim (nn.Embed needs both at construction)")
    return f"{code(matrix)}.shape[0]", f"{code(matrix)}.shape[1]"


def embed(bound: Bound, ctx: Ctx) -> Rewrite | Unsupported:
    """``hk.Embed`` -> ``nn.Embed`` (ARRAY_INDEX lookup only)."""
    if not _lookup_style_ok(bound, ctx):
        return Unsupported(
            "hk.Embed(lookup_style=ONE_HOT) computes one_hot(ids) @ table; nn.Embed only gathers "
            "rows (same values up to matmul rounding): use nn.Embed, or compute "
            "jax.nn.one_hot(ids, vocab) @ embed.embedding yourself"
        )
    sizes = _embed_sizes(bound)
    if isinstance(sizes, Unsupported):
        return sizes
    if "embedding_matrix" in bound and literal(bound["embedding_matrix"]) is not None:
        matrix = code(bound["embedding_matrix"])
        init: Args = [("embedding_init", f"lambda *_: {ctx.jnp}.asarray({matrix})")]
        imports: tuple[ImportSpec, ...] = ()
    else:
        result = init_arg(bound, "w_init", "embedding_init", ctx, f"{ctx.nn}.initializers.truncated_normal(1.0)")
        if isinstance(result, Unsupported):
            return result
        init, imports = result
    args: Args = [(None, sizes[0]), (None, sizes[1]), *init]
    return Rewrite(flax_call(f"{ctx.nn}.Embed", args + name_arg(bound, ctx.name)), imports)


BIAS = Signature("hk.Bias", ("output_size", "bias_dims", "b_init", "name"))

BIAS_CLASS_SOURCE = '''\
class {cls}({nn}.Module):
    """Haiku's ``hk.Bias``: ``inputs + b``, ``b`` over ``bias_dims`` (default: all but the batch axis)."""

    output_size: Sequence[int] | None = None
    bias_dims: Sequence[int] | None = None
    bias_init: Callable = {nn}.initializers.zeros

    @{nn}.compact
    def __call__(self, inputs, multiplier=None):
        if inputs.ndim < 2:
            raise ValueError(f"Bias needs inputs of rank >= 2, got shape {{inputs.shape}}")
        if self.output_size is not None and tuple(self.output_size) != inputs.shape[1:]:
            raise ValueError(f"Input shape must be {{(-1, *self.output_size)}} not {{inputs.shape}}")
        b = self.param("b", self.bias_init, self.bias_shape(inputs.shape), inputs.dtype)
        b = {jnp}.broadcast_to(b, inputs.shape)
        if multiplier is not None:
            b = b * multiplier
        return inputs + b

    def bias_shape(self, input_shape):
        """Haiku's ``calculate_bias_shape``: leading unit dimensions stripped."""
        if self.bias_dims is None:
            return input_shape[1:]
        shape = [1] * len(input_shape)
        for dim in self.bias_dims:
            if dim < 0:
                dim %= len(input_shape)
            if dim == 0:
                raise ValueError("Cannot apply bias across the minibatch dimension.")
            shape[dim] = input_shape[dim]
        start = next((d for d in range(1, len(shape)) if shape[d] != 1), len(shape))
        return tuple(shape[start:])
'''

BIAS_CLASS_IMPORTS: tuple[ImportSpec, ...] = (
    ImportSpec("collections.abc", "Callable", None),
    ImportSpec("collections.abc", "Sequence", None),
)


def bias_class_source(nn: str = "nn", jnp: str = "jnp", class_name: str = "Bias") -> str:
    """The module-level class the engine emits once per file using ``hk.Bias``."""
    return BIAS_CLASS_SOURCE.format(cls=class_name, nn=nn, jnp=jnp)


def bias(bound: Bound, ctx: Ctx, class_name: str = "Bias") -> Rewrite | Unsupported:
    """``hk.Bias(...)`` -> ``Bias(...)`` (the class from :func:`bias_class_source`)."""
    b = init_arg(bound, "b_init", "bias_init", ctx)
    if isinstance(b, Unsupported):
        return b
    args: Args = [(key, code(bound[key])) for key in ("output_size", "bias_dims") if key in bound]
    if any(literal(bound[key]) is None for key in ("output_size", "bias_dims") if key in bound):
        args = [(key, value) for key, value in args if value != "None"]
    args += b[0] + name_arg(bound, ctx.name)
    return Rewrite(flax_call(class_name, args), b[1])


__all__ = [
    "BIAS",
    "BIAS_CLASS_IMPORTS",
    "EMBED",
    "LINEAR",
    "bias",
    "bias_class_source",
    "embed",
    "flag_arg",
    "init_arg",
    "linear",
]
