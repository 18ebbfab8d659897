"""``hk.MultiHeadAttention`` -> an exact Linen ``MultiHeadAttention`` (emitted once per file).

``nn.MultiHeadDotProductAttention`` differs from Haiku in four ways: it stores
projections as ``(D, H, K)`` kernels and names the output ``out`` (Haiku
``(D, H*K)`` and ``linear``), scales the query before ``q.k`` (Haiku scales the
logits after, ~5e-7 apart), fills masked logits with ``finfo.min`` (Haiku
``-1e30``, so fully-masked fp16 rows differ) and cannot express
``value_size != key_size``. The emitted module reproduces Haiku exactly, for
every configuration, with Haiku's leaves: ``query``, ``key``, ``value``,
``linear``, each ``{kernel (D, H*K), bias}`` -- a checkpoint converts by
renaming ``w``/``b`` only, and outputs are bit-identical.

Argument mapping: ``w_init`` -> ``w_init`` (converted initializer),
``w_init_scale=s`` -> ``w_init=variance_scaling(s, "fan_in", "truncated_normal")``
(Haiku's ``VarianceScaling(s)``), ``b_init`` (None = zeros), ``with_bias``,
``value_size``, ``model_size`` as fields. The call ``(query, key, value, mask)``
is unchanged.

Example::

    hk.MultiHeadAttention(num_heads=4, key_size=16, w_init_scale=1.0)
        -> MultiHeadAttention(4, 16, w_init=nn.initializers.variance_scaling(1.0, "fan_in", "truncated_normal"),
                              name="multi_head_attention")
"""

from __future__ import annotations

from flaxify.migrate.layers_common import Bound, Ctx, Signature, code, flax_call, literal, name_arg
from flaxify.migrate.layers_linear import Args, init_arg
from flaxify.migrate.rewrite import JAX_IMPORT, ImportSpec, Rewrite, Unsupported, merge_imports

MULTI_HEAD_ATTENTION = Signature(
    "hk.MultiHeadAttention",
    ("num_heads", "key_size", "w_init_scale"),
    ("w_init", "with_bias", "b_init", "value_size", "model_size", "name"),
)

CLASS_SOURCE = '''class MultiHeadAttention({nn}.Module):
    """Haiku's hk.MultiHeadAttention: projections (D, H*K) named query/key/value/linear, logits scaled after q.k, masked with -1e30."""

    num_heads: int
    key_size: int
    w_init: Any
    with_bias: bool = True
    b_init: Any = {nn}.initializers.zeros
    value_size: Optional[int] = None
    model_size: Optional[int] = None

    @{nn}.compact
    def __call__(self, query, key, value, mask=None):
        value_size = self.value_size or self.key_size
        model_size = self.model_size or self.key_size * self.num_heads

        def projection(x, head_size, name):
            y = {nn}.Dense(self.num_heads * head_size, use_bias=self.with_bias, kernel_init=self.w_init, bias_init=self.b_init, name=name)(x)
            return y.reshape((*x.shape[:-1], self.num_heads, head_size))

        *leading_dims, sequence_length, _ = query.shape
        query_heads = projection(query, self.key_size, "query")
        key_heads = projection(key, self.key_size, "key")
        value_heads = projection(value, value_size, "value")
        attn_logits = {jnp}.einsum("...thd,...Thd->...htT", query_heads, key_heads)
        attn_logits = attn_logits / np.sqrt(self.key_size).astype(key.dtype)
        if mask is not None:
            attn_logits = {jnp}.where(mask, attn_logits, -1e30)
        attn_weights = jax.nn.softmax(attn_logits)
        attn = {jnp}.einsum("...htT,...Thd->...thd", attn_weights, value_heads)
        attn = {jnp}.reshape(attn, (*leading_dims, sequence_length, -1))
        return {nn}.Dense(model_size, use_bias=self.with_bias, kernel_init=self.w_init, bias_init=self.b_init, name="linear")(attn)
'''

CLASS_IMPORTS = (
    JAX_IMPORT,
    ImportSpec("numpy", None, "np"),
    ImportSpec("typing", "Any", None),
    ImportSpec("typing", "Optional", None),
)


def class_source(nn: str = "nn", jnp: str = "jnp") -> str:
    """The module-level class the engine emits once per file using ``hk.MultiHeadAttention``."""
    return CLASS_SOURCE.format(nn=nn, jnp=jnp)


def multi_head_attention(bound: Bound, ctx: Ctx) -> Rewrite | Unsupported:
    """``hk.MultiHeadAttention(...)`` -> ``MultiHeadAttention(...)`` (the exact helper)."""
    if "num_heads" not in bound or "key_size" not in bound:
        return Unsupported("hk.MultiHeadAttention needs num_heads and key_size")
    scale = bound.get("w_init_scale")
    has_w_init = "w_init" in bound and literal(bound["w_init"]) is not None
    has_scale = scale is not None and literal(scale) is not None
    if has_w_init == has_scale:
        return Unsupported("hk.MultiHeadAttention needs exactly one of w_init and w_init_scale")
    if has_w_init:
        w = init_arg(bound, "w_init", "w_init", ctx)
        if isinstance(w, Unsupported):
            return w
        w_args, imports = w
    else:
        w_args = [("w_init", f'{ctx.nn}.initializers.variance_scaling({code(scale)}, "fan_in", "truncated_normal")')]
        imports = ()
    b = init_arg(bound, "b_init", "b_init", ctx)
    if isinstance(b, Unsupported):
        return b
    args: Args = [(None, code(bound["num_heads"])), (None, code(bound["key_size"])), *w_args]
    if "with_bias" in bound and literal(bound["with_bias"]) is not True:
        args.append(("with_bias", code(bound["with_bias"])))
    args += b[0]
    for key in ("value_size", "model_size"):
        if key in bound and literal(bound[key]) is not None:
            args.append((key, code(bound[key])))
    return Rewrite(flax_call("MultiHeadAttention", args + name_arg(bound, ctx.name)), merge_imports(imports, b[1]))
