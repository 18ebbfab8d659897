"""``hk.data_structures`` helpers with exact one-line JAX equivalents, and ``hk.running_init``.

Haiku's ``tree_size`` and ``tree_bytes`` only sum over ``jax.tree.leaves``, so
they mean the same on Linen's nested trees::

    hk.data_structures.tree_size(params)   -> sum(x.size for x in jax.tree.leaves(params))
    hk.data_structures.tree_bytes(params)  -> sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(params))
    hk.running_init()                      -> self.is_initializing()      (inside a module method)

The structure-aware helpers see Haiku's two-level ``{module: {name: value}}``
dicts; Linen trees nest one level per module. ``filter``, ``partition``,
``partition_n``, ``merge``, ``traverse``, ``map``, ``is_subset`` and the dict
copies are rewritten in ``data_structures.py``.
"""

from __future__ import annotations

import libcst as cst

from flaxify.migrate.layers_common import code
from flaxify.migrate.rewrite import JAX_IMPORT, Rewrite, Unsupported

TREE_SUMS = {
    "haiku.data_structures.tree_size": "sum(x.size for x in jax.tree.leaves({tree}))",
    "haiku.data_structures.tree_bytes": "sum(x.size * x.dtype.itemsize for x in jax.tree.leaves({tree}))",
}


def rewrite_tree_sum(call: cst.Call, qualname: str) -> Rewrite | Unsupported:
    """``tree_size(t)`` / ``tree_bytes(t)`` -> the generator sum Haiku itself computes."""
    arg = call.args[0] if len(call.args) == 1 else None
    if arg is None or arg.star or (arg.keyword is not None and arg.keyword.value != "tree"):
        return Unsupported(f"hk.{qualname.removeprefix('haiku.')} takes one tree argument")
    tree = code(arg.value)
    if not isinstance(arg.value, (cst.Name, cst.Attribute, cst.Call, cst.Subscript)):
        tree = f"({tree})"
    return Rewrite(cst.parse_expression(TREE_SUMS[qualname].format(tree=tree)), (JAX_IMPORT,))


def rewrite_running_init(call: cst.Call) -> Rewrite | Unsupported:
    if call.args:
        return Unsupported("hk.running_init takes no arguments")
    return Rewrite(cst.parse_expression("self.is_initializing()"))
