"""Why each Haiku API that has no exact rewrite yet stays as it was.

Every Haiku reference the passes cannot rewrite ends up under
``# TODO(flaxify): hk.X: <reason>``. The reason must tell the user what differs
and what the Flax counterpart is, so these are data, one line per API, keyed by
the attribute path below ``haiku`` (``"LSTM"``, ``"experimental.layer_stack"``).
``layers.py`` uses :data:`MODULES` for constructors, ``leftovers.py`` uses
:func:`reason` for everything else.

Example::

    vq = hk.nets.VectorQuantizer(...)
    # becomes
    # TODO(flaxify): hk.nets.VectorQuantizer: no Flax built-in: port the codebook (...)
    vq = hk.nets.VectorQuantizer(...)
"""

from __future__ import annotations

#: Haiku module classes without a table-driven rewrite.
MODULES = {
    "nets.VectorQuantizer": "no Flax built-in: port the codebook as self.param and the straight-through estimator by hand",
    "nets.VectorQuantizerEMA": (
        "no Flax built-in: port the codebook and its debiased EMAs (cluster sizes, embedding sums) as "
        "self.variable('state', ...) updated outside init"
    ),
    "nets.ResNet": "no Flax built-in ResNet with Haiku's layout; build it from the migrated layers",
    "Deferred": "no Flax counterpart: build the module lazily in an @nn.compact method",
}

# hk.data_structures calls become emitted helpers over flax.traverse_util (data_structures.py).
_HELPER_ONLY = (
    "only calls are rewritten (to the emitted helper of the same name over flax.traverse_util.flatten_dict);"
    " call it directly or port by hand"
)

#: Haiku functions and other APIs.
APIS = {
    "next_rng_key": "only rewritten inside module classes (self.make_rng('dropout')); pass a key in explicitly here",
    "maybe_next_rng_key": "only rewritten inside module classes; pass a key (or None) in explicitly here",
    "next_rng_keys": "only rewritten inside module classes; split an explicit key with jax.random.split here",
    "reserve_rng_keys": (
        "only pre-splits Haiku's key stream; Flax derives keys by name (self.make_rng) and key values differ"
        " between the libraries anyway: delete the statement"
    ),
    "dropout": "only rewritten inside module classes; use nn.Dropout(rate)(x, deterministic=False, rng=key) from a Linen module",
    "PRNGSequence": (
        "imported by name: import haiku as hk and write hk.PRNGSequence, which becomes the emitted exact "
        "PRNGSequence helper (or split keys with jax.random.split)"
    ),
    "with_rng": "no Flax counterpart: pass rngs={...} to apply or call nn.Dropout(...)(x, rng=key)",
    "get_state": "only rewritten inside module classes with a literal name; use self.variable('state', name, init_fn, shape, dtype)",
    "set_state": "only rewritten inside module classes with a literal name; use self.put_variable('state', name, value)",
    "get_parameter": "only rewritten inside module classes; use self.param(name, init_fn, shape, dtype) in a Linen module",
    "transform": (
        "only `name = hk.transform(fn)` and factories that return one, with fn a def or lambda of this file or "
        "`functools.partial(fn, kw=v)`, are rewritten; wrap fn in an nn.Module by hand"
    ),
    "transform_with_state": (
        "only `name = hk.transform_with_state(fn)` and factories that return one, with fn a def of this file, are "
        "rewritten; wrap fn in an nn.Module by hand"
    ),
    "without_apply_rng": (
        "only `name = hk.without_apply_rng(hk.transform(fn))` and factories that return one are rewritten; wrap fn "
        "in an nn.Module by hand"
    ),
    "multi_transform": (
        "not rewritten yet: make the template a Linen module whose methods are the applies, then call "
        "net.apply({'params': params}, x, method='encode') for each"
    ),
    "multi_transform_with_state": "not rewritten yet: as hk.multi_transform, with mutable= for the state collections",
    "vmap": (
        "only rewritten in module methods (outside layer_stack bodies): nn.vmap(Target, variable_axes={'params': None}, "
        "split_rngs={'params': False, 'dropout': split_rng}, in_axes=..., out_axes=...) (Haiku never maps parameters)"
    ),
    "scan": (
        "only rewritten in module methods (outside layer_stack bodies): nn.scan(fn, variable_broadcast='params', "
        "split_rngs={'params': False, 'dropout': True}) lifted over the module"
    ),
    "map": "only rewritten in module methods (outside layer_stack bodies): nn.scan with a None carry lifted over the module",
    "remat": "nn.remat(Target) on a module class; pass name= to keep the Haiku name (Flax renames to Checkpoint<Class>_N)",
    "checkpoint": "nn.remat(Target) on a module class; pass name= to keep the Haiku name",
    "cond": "only rewritten in module methods (outside layer_stack bodies): nn.cond(pred, true_fn, false_fn, self, *operands) with branches taking the module first",
    "switch": "only rewritten in module methods (outside layer_stack bodies): nn.switch(index, branches, self, *operands) with branches taking the module first",
    "while_loop": "nn.while_loop(cond_fn, body_fn, self, init) with functions taking the module first (no parameters may be created in the loop)",
    "fori_loop": "no nn.fori_loop: nn.while_loop with a counter in the carry, or nn.scan(length=upper-lower)",
    "layer_stack": (
        "nn.scan(Block, variable_axes={'params': 0}, split_rngs={'params': True, 'dropout': True}, length=n) with "
        "Block.__call__(x, _) -> (x, None); the stacked leaves keep their leading layer axis"
    ),
    "experimental.layer_stack": (
        "nn.scan(Block, variable_axes={'params': 0}, split_rngs={'params': True, 'dropout': True}, length=n) with "
        "Block.__call__(x, _) -> (x, None); the stacked leaves keep their leading layer axis"
    ),
    "name_scope": "rewritten (name_scope.py) when it is a with statement directly in a module method (or directly in such a block), over a literal name of identifiers ('s' or 'a/b'), and the block can run as a closure unchanged; this one is not (a numbered or non-literal name, a name shared with a module of the same scope or a scope entered in a branch or loop before it, method_name=, 'as', return/yield/global/nonlocal/del/import/try/def/lambda/:= in the block, or a name it reads, or reads after it, that is not surely bound before it): Linen has no scope context manager, and a '/' in a Linen name stays one flat key (params['s/linear'], not Haiku's nested 'parent/s/linear'); move the block into `def block(scope, *inputs): ...; return <values used after it>` run as `NameScope(block, name='s')(*inputs)` (the helper flaxify emits elsewhere), name its modules as Haiku does in the scope (counters restart there) and use scope.param for hk.get_parameter; 'a/b' is one NameScope per part, a repeated scope is 's_1'",
    "custom_getter": "wrap each module class built in the block as nn.map_variables(Cls, 'params', trans_in_fn=fn, init=True)(..., name=<Haiku name>); fn maps one module's whole {name: array} dict instead of (next_getter, value, context) per parameter: a cast next_getter(value.astype(D)) is lambda vs: jax.tree.map(lambda v: v.astype(D), vs) (bit-exact for hk.Linear in bfloat16); a getter reading context.full_name/module_name needs that logic on Flax paths, and modules built outside the block but called in it are wrapped too in Haiku (the getter runs at read time)",
    "custom_creator": "only a creator returning next_creator(shape, dtype, X) for a constant X (jnp.zeros, jnp.ones, hk.initializers.Constant(c)), or next_creator(shape, D, init) for a literal dtype D over nn.Dense layers only, over a block that builds the layers it calls is rewritten (custom_creators.py: nn.map_variables(Layer, 'params', trans_out_fn=<fill each leaf>, init=True) / param_dtype=D); this creator reads its context (Linen has no per-parameter creation hook: context.full_name logic must be written on Flax paths), calls init itself, changes the dtype of other layers (pass param_dtype= and check how the layer computes), or the block uses params=/state=/'as' or layers built outside it; a creator transforming the created value is nn.map_variables(Cls, 'params', trans_out_fn=fn, init=True) on each module class (fn maps a module's whole dict)",
    "intercept_methods": "only an interceptor that passes every call on except the methods of this file's own module classes it names (if not isinstance(context.module, C) or context.method_name != 'm': return next_fun(*args, **kwargs)) and reads nothing else of the context is rewritten (intercept.py); otherwise use with nn.intercept_methods(interceptor): by hand: the interceptor gets (next_fun, args, kwargs, context) with context.module / method_name / orig_method as Haiku's MethodContext (no orig_class), but Flax also calls it for setup() and every method of Flax's own layers (nn.Dense, ...) and of the helpers flaxify emits, whose classes and arguments differ from Haiku's, and context.module is a Linen module (Haiku's module_name path is not its name)",
    "mixed_precision.set_policy": (
        "only set_policy at module level or at the top of a module-level function, on hk.Linear / hk.Conv1D/2D/3D"
        " (dtype=/param_dtype=, .astype(output) on the call), hk.BatchNorm (params == compute) or hk.LayerNorm (float32)"
        " (casts around the call), or a module class of the file whose one method __call__ provably keeps compute dtype"
        " (input/result casts, dtypes on its layers), with a literal jmp policy, is rewritten (precision.py); Flax has no"
        " per-class policy:"
        " set dtype= (compute) and param_dtype= on each layer and cast inputs/outputs by hand (Linen norms still reduce"
        " in float32)"
    ),
    "mixed_precision.push_policy": "Flax has no policy stack: set dtype=/param_dtype= on the layers and cast outputs by hand",
    "mixed_precision.current_policy": "Flax has no policy: read the layer's dtype/param_dtype fields",
    "lift": "no Flax counterpart for lifting an inner transform's params; make the inner model a submodule",
    "transparent_lift": "no Flax counterpart: make the inner model a submodule",
    "experimental.lift": "no Flax counterpart for lifting an inner transform's params; make the inner model a submodule",
    "experimental.name_like": "pass name= explicitly",
    "force_name": "pass name= explicitly",
    "to_module": "write a small nn.Module whose @nn.compact __call__ calls the function",
    "data_structures.to_mutable_dict": "only a call with one tree is rewritten: flax.core.unfreeze(tree) (a nested dict copy)",
    "data_structures.to_immutable_dict": "only a call with one tree is rewritten: flax.core.freeze(tree)",
    "data_structures.to_haiku_dict": "only a call with one tree is rewritten: flax.core.unfreeze(tree) (a nested dict copy)",
    "data_structures.tree_size": "only a call with one tree is rewritten: sum(x.size for x in jax.tree.leaves(tree))",
    "data_structures.tree_bytes": "only a call with one tree is rewritten: sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(tree))",
    "running_init": "only rewritten inside module methods: self.is_initializing()",
    "data_structures.traverse": _HELPER_ONLY,
    "data_structures.filter": _HELPER_ONLY,
    "data_structures.partition": _HELPER_ONLY,
    "data_structures.partition_n": _HELPER_ONLY,
    "data_structures.merge": _HELPER_ONLY,
    "data_structures.map": _HELPER_ONLY,
    "data_structures.is_subset": _HELPER_ONLY,
    "data_structures.structure": "not a Haiku API (haiku.data_structures has no structure); a tree's structure is jax.tree.structure(tree)",
}

GENERIC = "no exact Flax rewrite for this Haiku API yet; port it by hand"


def reason(api: str) -> str:
    """Why ``haiku.<api>`` is not rewritten; ``api`` is the path below ``haiku``."""
    for key in (api, api.removeprefix("experimental."), api.removeprefix("nets.")):
        if key in APIS:
            return APIS[key]
        if key in MODULES:
            return MODULES[key]
    if api.rsplit(".", 1)[-1][:1].isupper():
        return "a Haiku class used as a value (not constructed or called here); use its Flax counterpart by hand"
    return GENERIC
