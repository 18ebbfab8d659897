"""The table of JAX, Flax, Haiku and Equinox transformations the linter knows.

Data, not code: each entry says which arguments are the traced callables, how
strongly they are traced (``Kind``) and how to tell static parameters apart.
"""

from __future__ import annotations

from dataclasses import dataclass

from flaxify.lint.model import Kind

# A callable slot: a positional index and the keyword that can also carry it.
Slot = tuple[int, str]


@dataclass(frozen=True)
class Transform:
    """How one transformation traces the callables passed to it.

    ``statics`` names the scheme that marks parameters static: ``"jit"``
    (static_argnums/static_argnames), ``"pmap"`` (static_broadcasted_argnums),
    ``"grad"`` (only ``argnums`` are traced), ``"vmap"`` (``in_axes=None`` is
    not batched), ``"nondiff"`` (custom_jvp/vjp nondiff_argnums), ``"module"``
    (a Haiku function: guessed from annotations and defaults) or ``""`` (all traced).
    """

    kind: Kind
    slots: tuple[Slot, ...] = ((0, "fun"),)
    statics: str = ""
    flavor: str = "jax"
    many: bool = False  # the slot holds a list of callables (lax.switch)


_JIT = Transform(Kind.STAGE, statics="jit")
_GRAD = Transform(Kind.GRAD, statics="grad")
_VMAP = Transform(Kind.BATCH, statics="vmap")
_ALL = Transform(Kind.STAGE)
_SCAN = Transform(Kind.STAGE, ((0, "f"),))
_FORI = Transform(Kind.STAGE, ((2, "body_fun"),))
_WHILE = Transform(Kind.STAGE, ((0, "cond_fun"), (1, "body_fun")))
_COND = Transform(Kind.STAGE, ((1, "true_fun"), (2, "false_fun")))
_SWITCH = Transform(Kind.STAGE, ((1, "branches"),), many=True)
_HK = Transform(Kind.STAGE, ((0, "f"),), statics="module", flavor="haiku")
_NNX_JIT = Transform(Kind.STAGE, ((0, "f"),), statics="jit", flavor="nnx")

TRANSFORMS: dict[str, Transform] = {
    "jax.jit": _JIT,
    "jax.pmap": Transform(Kind.STAGE, statics="pmap"),
    "jax.checkpoint": _JIT,
    "jax.remat": _JIT,
    "jax.ad_checkpoint.checkpoint": _JIT,
    "jax.make_jaxpr": _JIT,
    "jax.eval_shape": _ALL,
    "jax.shard_map": _ALL,
    "jax.experimental.shard_map.shard_map": _ALL,
    "jax.custom_jvp": Transform(Kind.GRAD, statics="nondiff"),
    "jax.custom_vjp": Transform(Kind.GRAD, statics="nondiff"),
    "jax.vmap": _VMAP,
    "jax.grad": _GRAD,
    "jax.value_and_grad": _GRAD,
    "jax.jacfwd": _GRAD,
    "jax.jacrev": _GRAD,
    "jax.jacobian": _GRAD,
    "jax.hessian": _GRAD,
    "jax.jvp": Transform(Kind.GRAD),
    "jax.vjp": Transform(Kind.GRAD),
    "jax.linearize": Transform(Kind.GRAD),
    "jax.lax.scan": _SCAN,
    "jax.lax.map": _SCAN,
    "jax.lax.associative_scan": _SCAN,
    "jax.lax.fori_loop": _FORI,
    "jax.lax.while_loop": _WHILE,
    "jax.lax.cond": _COND,
    "jax.lax.switch": _SWITCH,
    # Haiku: the transformed function, and Haiku's own lifted transforms.
    "haiku.transform": _HK,
    "haiku.transform_with_state": _HK,
    "haiku.multi_transform": _HK,
    "haiku.multi_transform_with_state": _HK,
    "haiku.vmap": Transform(Kind.BATCH, ((0, "fun"),), statics="vmap", flavor="haiku"),
    "haiku.scan": Transform(Kind.STAGE, ((0, "f"),), flavor="haiku"),
    "haiku.remat": Transform(Kind.STAGE, ((0, "fun"),), flavor="haiku"),
    "haiku.fori_loop": Transform(Kind.STAGE, ((2, "body_fun"),), flavor="haiku"),
    "haiku.while_loop": Transform(Kind.STAGE, ((0, "cond_fun"), (1, "body_fun")), flavor="haiku"),
    "haiku.cond": Transform(Kind.STAGE, ((1, "true_fun"), (2, "false_fun")), flavor="haiku"),
    "haiku.switch": Transform(Kind.STAGE, ((1, "branches"),), flavor="haiku", many=True),
    "haiku.map": Transform(Kind.STAGE, ((0, "f"),), flavor="haiku"),
    # Flax NNX: graph objects passed as arguments may be mutated (not flagged anyway).
    "flax.nnx.jit": _NNX_JIT,
    "flax.nnx.remat": _NNX_JIT,
    "flax.nnx.scan": Transform(Kind.STAGE, ((0, "f"),), flavor="nnx"),
    "flax.nnx.vmap": Transform(Kind.BATCH, ((0, "f"),), statics="vmap", flavor="nnx"),
    "flax.nnx.grad": Transform(Kind.GRAD, ((0, "f"),), statics="grad", flavor="nnx"),
    "flax.nnx.value_and_grad": Transform(Kind.GRAD, ((0, "f"),), statics="grad", flavor="nnx"),
    "flax.nnx.cond": Transform(Kind.STAGE, ((1, "true_fun"), (2, "false_fun")), flavor="nnx"),
    "flax.nnx.switch": Transform(Kind.STAGE, ((1, "branches"),), flavor="nnx", many=True),
    "flax.nnx.fori_loop": Transform(Kind.STAGE, ((2, "body_fun"),), flavor="nnx"),
    "flax.nnx.while_loop": Transform(Kind.STAGE, ((0, "cond_fun"), (1, "body_fun")), flavor="nnx"),
    "flax.nnx.shard_map": Transform(Kind.STAGE, ((0, "f"),), flavor="nnx"),
    # Equinox filters: non-array leaves are static by construction.
    "equinox.filter_jit": Transform(Kind.STAGE),
    "equinox.filter_vmap": Transform(Kind.BATCH),
    "equinox.filter_grad": Transform(Kind.GRAD),
    "equinox.filter_value_and_grad": Transform(Kind.GRAD),
    "equinox.filter_checkpoint": Transform(Kind.STAGE),
}

# Raw JAX transforms that Haiku code must not go through inside hk.transform, with the Haiku twin.
HAIKU_TWINS: dict[str, str] = {
    "jax.vmap": "hk.vmap",
    "jax.lax.scan": "hk.scan",
    "jax.checkpoint": "hk.remat",
    "jax.remat": "hk.remat",
    "jax.lax.fori_loop": "hk.fori_loop",
    "jax.lax.while_loop": "hk.while_loop",
    "jax.lax.cond": "hk.cond",
    "jax.lax.switch": "hk.switch",
    "jax.lax.map": "hk.map",
    "jax.eval_shape": "hk.eval_shape",
    "jax.jit": "hk.jit",
}

# The last attribute of every transform name: a cheap filter before resolving imports.
LAST_NAMES = frozenset(name.rpartition(".")[2] for name in TRANSFORMS)

LINEN_MODULE = "flax.linen.Module"
NNX_MODULE = "flax.nnx.Module"
HAIKU_MODULE = "haiku.Module"
LINEN_COMPACT = "flax.linen.compact"

# Flax and Haiku module methods that run inside init/apply, i.e. traced.
LINEN_ROOT_METHODS = frozenset({"__call__", "setup"})
