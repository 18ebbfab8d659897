"""``hk.Sequential`` -> ``nn.Sequential`` and ``hk.nets.MLP`` -> a small ``MLP`` Linen module.

``nn.Sequential`` unpacks a tuple (or dict) returned by one layer into the
arguments of the next; ``hk.Sequential`` passes it on as one value. The rewrite
is emitted only when every layer but the last is known to return an array (a
Haiku or Flax layer, a ``jax.nn``/``jax.numpy`` function, or a lambda built from
those). Both pass extra call arguments to the first layer only.

Flax has no MLP. ``MLP_CLASS_SOURCE`` (see :func:`mlp_class_source`) is a
Linen module the engine emits once per file that uses ``hk.nets.MLP``; it
reproduces Haiku's layer names (``linear_0`` ... inside the MLP), its layer
order (Dense, then dropout, then activation; no activation after the last layer
unless ``activate_final``) and its dropout keys (``rng`` split once per layer as
``hk.PRNGSequence`` does), so ``mlp(x, dropout_rate=r, rng=key)`` keeps working.

Examples::

    hk.Sequential([hk.Linear(3), jax.nn.relu, hk.Linear(1)])
        -> nn.Sequential([nn.Dense(3, ...), jax.nn.relu, nn.Dense(1, ...)])
    hk.nets.MLP([64, 10], activation=jax.nn.gelu)
        -> MLP(output_sizes=[64, 10], activation=jax.nn.gelu, name="mlp")
"""

from __future__ import annotations

import libcst as cst

from flaxify.migrate.initializers import default_kernel_init
from flaxify.migrate.layers_common import Bound, Ctx, Signature, code, flax_call, haiku_name, name_arg, resolve
from flaxify.migrate.layers_linear import Args, flag_arg, init_arg
from flaxify.migrate.rewrite import JAX_IMPORT, ImportSpec, Rewrite, Unsupported, merge_imports

SEQUENTIAL = Signature("hk.Sequential", ("layers", "name"))
MLP = Signature(
    "hk.nets.MLP", ("output_sizes", "w_init", "b_init", "with_bias", "activation", "activate_final", "name")
)

#: Haiku layers (by class name) whose call returns one array.
ARRAY_LAYERS = frozenset(
    [
        "Linear",
        "Conv1D",
        "Conv2D",
        "Conv3D",
        "ConvND",
        "Conv1DTranspose",
        "Conv2DTranspose",
        "Conv3DTranspose",
        "ConvNDTranspose",
        "DepthwiseConv1D",
        "DepthwiseConv2D",
        "DepthwiseConv3D",
        "LayerNorm",
        "GroupNorm",
        "RMSNorm",
        "InstanceNorm",
        "BatchNorm",
        "Embed",
        "Bias",
        "Flatten",
        "Reshape",
        "MLP",
        "MaxPool",
        "AvgPool",
    ]
)
#: Flax layers whose call returns one array.
FLAX_ARRAY_LAYERS = frozenset(
    [
        "Dense",
        "Conv",
        "ConvTranspose",
        "Embed",
        "LayerNorm",
        "GroupNorm",
        "RMSNorm",
        "InstanceNorm",
        "BatchNorm",
        "Dropout",
    ]
)

#: The helper Linen classes rewrites construct (each returns one array).
HELPER_CLASSES = frozenset({"MLP", "Bias", "DepthwiseConv1D", "DepthwiseConv2D", "DepthwiseConv3D"})

MLP_CLASS_SOURCE = '''\
class {cls}({nn}.Module):
    """Haiku's ``hk.nets.MLP``: Dense layers ``linear_i``; dropout, then activation, in between."""

    output_sizes: Sequence[int]
    kernel_init: Callable = {default_init}
    bias_init: Callable = {nn}.initializers.zeros
    use_bias: bool = True
    activation: Callable = jax.nn.relu
    activate_final: bool = False

    @{nn}.compact
    def __call__(self, inputs, dropout_rate=None, rng=None):
        if (dropout_rate is None) != (rng is None):
            raise ValueError("Pass both dropout_rate and rng, or neither.")
        out = inputs
        for i, size in enumerate(self.output_sizes):
            dense = {nn}.Dense(
                size,
                use_bias=self.use_bias,
                kernel_init=self.kernel_init,
                bias_init=self.bias_init,
                name=f"linear_{{i}}",
            )
            out = dense(out)
            if i < len(self.output_sizes) - 1 or self.activate_final:
                if dropout_rate is not None:
                    rng, key = jax.random.split(rng)  # hk.PRNGSequence's next key
                    out = {nn}.Dropout(dropout_rate, deterministic=False)(out, rng=key)
                out = self.activation(out)
        return out
'''

MLP_CLASS_IMPORTS: tuple[ImportSpec, ...] = (
    JAX_IMPORT,
    ImportSpec("collections.abc", "Callable", None),
    ImportSpec("collections.abc", "Sequence", None),
)


def mlp_class_source(nn: str = "nn", class_name: str = "MLP") -> str:
    """The module-level class the engine emits once per file using ``hk.nets.MLP``."""
    return MLP_CLASS_SOURCE.format(cls=class_name, nn=nn, default_init=default_kernel_init(nn))


def _returns_array(node: cst.BaseExpression, ctx: Ctx, params: frozenset[str] = frozenset()) -> bool:
    """True when calling (or, inside a lambda body, evaluating) ``node`` gives one array."""
    if isinstance(node, cst.Call):
        func = node.func
        if isinstance(func, cst.Call):  # an immediately called layer: hk.Linear(3)(x)
            func = func.func
        qualname = resolve(func, ctx.resolver) or ""
        if haiku_name(qualname) in ARRAY_LAYERS:
            return True
        if qualname.startswith(f"{ctx.nn}.") and qualname.split(".")[-1] in FLAX_ARRAY_LAYERS:
            return True
        if qualname.startswith("flax.linen.") and qualname.split(".")[-1] in FLAX_ARRAY_LAYERS:
            return True
        if isinstance(func, cst.Name) and func.value in HELPER_CLASSES:  # hk.nets.MLP / hk.Bias, rewritten
            return True
        return bool(params) and qualname.startswith(("jax.numpy.", "jax.nn.", "flax.linen.", f"{ctx.nn}."))
    if isinstance(node, cst.Name | cst.Attribute):
        if isinstance(node, cst.Name) and node.value in params:
            return True
        qualname = resolve(node, ctx.resolver) or ""
        return qualname.startswith(("jax.nn.", "jax.numpy.", "flax.linen.", f"{ctx.nn}.")) and qualname[-1].islower()
    if isinstance(node, cst.Lambda):
        names = frozenset(p.name.value for p in node.params.params)
        return _returns_array(node.body, ctx, names)
    if params and isinstance(node, cst.IfExp):
        return _returns_array(node.body, ctx, params) and _returns_array(node.orelse, ctx, params)
    if params and isinstance(node, cst.BinaryOperation):
        return _returns_array(node.left, ctx, params) or _returns_array(node.right, ctx, params)
    return False


def sequential(bound: Bound, ctx: Ctx) -> Rewrite | Unsupported:
    """``hk.Sequential([...])`` -> ``nn.Sequential([...])`` where that is exact."""
    layers = bound.get("layers")
    if not isinstance(layers, cst.List | cst.Tuple):
        return Unsupported("hk.Sequential: pass the layers as a literal list so each can be checked")
    elements = [e.value for e in layers.elements]
    if any(isinstance(e, cst.StarredElement) for e in layers.elements) or not elements:
        return Unsupported(
            "hk.Sequential with no layers (or *layers) is the identity in Haiku but raises in nn.Sequential"
        )
    for index, element in enumerate(elements[:-1]):
        if not _returns_array(element, ctx):
            return Unsupported(
                f"hk.Sequential: layer {index} (`{code(element)}`) may return a tuple, which nn.Sequential "
                "would unpack into the next layer's arguments; call the layers one after another instead"
            )
    # A literal list keeps its layout (one layer per line stays so); a tuple becomes a list.
    listed = layers if isinstance(layers, cst.List) else cst.List([cst.Element(e) for e in elements])
    return Rewrite(flax_call(f"{ctx.nn}.Sequential", [(None, code(listed)), *name_arg(bound, ctx.name)]))


def mlp(bound: Bound, ctx: Ctx, class_name: str = "MLP") -> Rewrite | Unsupported:
    """``hk.nets.MLP(...)`` -> ``MLP(...)`` (the class from :func:`mlp_class_source`)."""
    if "output_sizes" not in bound:
        return Unsupported("hk.nets.MLP needs output_sizes")
    w = init_arg(bound, "w_init", "kernel_init", ctx)
    b = init_arg(bound, "b_init", "bias_init", ctx)
    for part in (w, b):
        if isinstance(part, Unsupported):
            return part
    args: Args = [("output_sizes", code(bound["output_sizes"])), *w[0], *b[0]]
    args += flag_arg(bound, "with_bias", "use_bias")
    if "activation" in bound:
        args.append(("activation", code(bound["activation"])))
    args += flag_arg(bound, "activate_final", "activate_final", default=False)
    return Rewrite(flax_call(class_name, args + name_arg(bound, ctx.name)), merge_imports(w[1], b[1]))


__all__ = [
    "MLP_CLASS_IMPORTS",
    "MLP_CLASS_SOURCE",
    "mlp",
    "mlp_class_source",
    "sequential",
]
