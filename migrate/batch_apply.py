"""``hk.BatchApply`` and ``hk.expand_apply``: shape wrappers with no parameters.

Neither is a Haiku module (no name, no parameters, no state): they reshape
inputs around any callable, and work unchanged around a Linen module. Flax has
no built-in of the same contract, so the rewrite renames the call to a helper
of the same name and signature that the engine emits once per file. The helper
copies Haiku's reshapes step for step, so outputs are bit-identical::

    hk.BatchApply(hk.Linear(1))(outs)    -> BatchApply(nn.Dense(1, ...))(outs)
    hk.BatchApply(f, num_dims=3)(x, y)   -> BatchApply(f, num_dims=3)(x, y)
    hk.expand_apply(f, axis=-1)(x)       -> expand_apply(f, axis=-1)(x)

Haiku's ``BatchApply`` merges the leading ``num_dims`` axes of every input
leaf that has at least that many (others pass through), calls ``f``, and
splits the leading axis of every output leaf back into the shape of the first
mergeable input leaf (positional arguments before keyword arguments).
"""

from __future__ import annotations

from flaxify.migrate.rewrite import JAX_IMPORT, ImportSpec

BATCH_APPLY_SOURCE = '''class BatchApply:
    """Haiku's hk.BatchApply: merges leading axes of the inputs, calls f, splits the outputs' leading axis back."""

    def __init__(self, f, num_dims=2):
        self._f = f
        self.num_dims = num_dims

    def __call__(self, *args, **kwargs):
        def mergeable(x):
            return {jnp}.asarray(x).ndim >= self.num_dims

        leaves = [x for x in jax.tree.leaves((args, kwargs)) if mergeable(x)]
        if not leaves:
            raise ValueError(f"BatchApply requires at least one input with ndim >= {{self.num_dims}}.")
        leading = leaves[0].shape[:self.num_dims]

        def merge(x):
            if not mergeable(x):
                return x
            return x.reshape((math.prod(x.shape[:self.num_dims]),) + x.shape[self.num_dims:])

        outputs = self._f(*jax.tree.map(merge, args), **jax.tree.map(merge, kwargs))
        return jax.tree.map(lambda x: x.reshape(leading + x.shape[1:]), outputs)
'''

EXPAND_APPLY_SOURCE = '''def expand_apply(f, axis=0):
    """Haiku's hk.expand_apply: adds a size-1 axis to every input leaf, calls f, squeezes it from the outputs."""
    if axis not in [0, -1]:
        raise ValueError("expand_apply currently only supports axis=0 or axis=-1.")

    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        expand = lambda t: {jnp}.expand_dims(t, axis=axis)
        outputs = f(*jax.tree.map(expand, args), **jax.tree.map(expand, kwargs))
        return jax.tree.map(lambda t: {jnp}.squeeze(t, axis=axis), outputs)

    return wrapper
'''

#: Haiku name -> (emitted name, source template, imports).
HELPERS: dict[str, tuple[str, str, tuple[ImportSpec, ...]]] = {
    "BatchApply": ("BatchApply", BATCH_APPLY_SOURCE, (JAX_IMPORT, ImportSpec("math", None, None))),
    "expand_apply": ("expand_apply", EXPAND_APPLY_SOURCE, (JAX_IMPORT, ImportSpec("functools", None, None))),
}
#: The calls the rewrite renames to the emitted helper (same signature).
FUNCTIONS = frozenset(f"haiku.{tail}" for tail in HELPERS)


def helper_source(tail: str, *, jnp: str) -> tuple[str, str, tuple[ImportSpec, ...]] | None:
    """``(name, source, imports)`` of the helper emitted for ``haiku.<tail>``, else None."""
    found = HELPERS.get(tail)
    if found is None:
        return None
    name, template, imports = found
    return name, template.format(jnp=jnp), imports
