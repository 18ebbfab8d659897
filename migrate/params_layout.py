"""Code that reads a parameter tree in Haiku's layout gets a TODO instead of a KeyError or a wrong walk.

Haiku's parameters are two levels deep, ``{"mlp/~/linear_0": {"w": w, "b": b}}``. Linen's nest one
level per module and name the leaves of its layers differently,
``{"mlp": {"linear_0": {"kernel": w, "bias": b}}}``. Once ``init`` / ``apply`` are rewritten the
program holds Linen trees, so code around them that spells Haiku's layout would fail (a literal
key) or silently mean something else (a two-level walk now yields sub-trees as "arrays"). Which
leaf names change depends on the layer that owns them, which this pass cannot see, so it marks:

- a literal key pair ``p["mlp/~/linear_0"]["w"]`` (a ``/`` path or a leaf Linen renames), with the
  Linen spelling for the usual owner of that leaf;
- a two-level walk ``for m, d in params.items(): ... for n, v in d.items()`` (loops or
  comprehensions) over a name that holds parameters (``params``, ``*_params``, ``.params``).

VALID (left alone)::

    kernel = params["linear"]["kernel"]
    for split, metrics in results.items():
        for name, value in metrics.items(): ...

INVALID (marked)::

    w = params["linear"]["w"]
    flat = {f"{m}/{n}": v for m, d in params.items() for n, v in d.items()}
"""

from __future__ import annotations

import re

import libcst as cst

from flaxify.migrate.base import FlaxifyCommand, MigrationState
from flaxify.migrate.layers_common import code, walk

#: Haiku leaf names that Linen's layers spell differently, with the layers that own them.
_RENAMED = {
    "w": ("kernel", "a hk.Linear or hk.Conv*"),
    "b": ("bias", "a hk.Linear or hk.Conv*"),
    "offset": ("bias", "a hk.LayerNorm or another norm (the emitted BatchNorm keeps `offset`)"),
    "embeddings": ("embedding", "a hk.Embed"),
}
#: A Haiku module path: names joined by "/", with "~" or "~method" scopes.
_HAIKU_PATH = re.compile(r"^[A-Za-z_]\w*(?:/~?\w*)*$")
_CONSTRUCT = "Haiku parameter layout"
#: Linen's variable collections: `variables["params"]["w"]` is a Linen tree read by a Linen name.
_COLLECTIONS = frozenset({"params", "batch_stats", "state", "cache", "intermediates"})


class ParamsLayoutCommand(FlaxifyCommand):
    DESCRIPTION = "Marks code that indexes or walks parameters in Haiku's layout."
    METADATA_DEPENDENCIES = ()  # spelling only: no scope analysis needed

    @classmethod
    def wanted(cls, source: bytes, state: MigrationState) -> bool:
        return b"][" in source or b".items()" in source

    def visit_Subscript(self, node: cst.Subscript) -> bool:
        keys = _literal_key_pair(node)
        if keys is not None:
            why = _key_pair_reason(*keys)
            if why is not None:
                self.todo(_CONSTRUCT, why)
        return True

    def visit_For(self, node: cst.For) -> bool:
        outer = _params_walk(node.target, node.iter)
        if outer is not None and any(_walks(inner, outer[1]) for inner in _inner_fors(node.body)):
            self.todo(_CONSTRUCT, _walk_reason(outer[0]))
        return True

    def visit_CompFor(self, node: cst.CompFor) -> bool:
        outer = _params_walk(node.target, node.iter)
        inner = node.inner_for_in
        while outer is not None and inner is not None:
            if _walks(inner, outer[1]):
                self.todo(_CONSTRUCT, _walk_reason(outer[0]))
                break
            inner = inner.inner_for_in
        return True


def _string(node: cst.BaseExpression) -> str | None:
    if isinstance(node, cst.SimpleString) and node.prefix.lower() in ("", "u"):
        value = node.evaluated_value
        return value if isinstance(value, str) else None
    return None


def _only_index(node: cst.Subscript) -> cst.BaseExpression | None:
    if len(node.slice) == 1 and isinstance(node.slice[0].slice, cst.Index):
        return node.slice[0].slice.value
    return None


def _literal_key_pair(node: cst.Subscript) -> tuple[str, str] | None:
    """``("mlp/~/linear_0", "w")`` for ``x["mlp/~/linear_0"]["w"]``; None for anything else."""
    inner = node.value
    if not isinstance(inner, cst.Subscript):
        return None
    outer_key, inner_key = _only_index(node), _only_index(inner)
    leaf = _string(outer_key) if outer_key is not None else None
    module = _string(inner_key) if inner_key is not None else None
    if leaf is None or module is None:
        return None
    return module, leaf


def _key_pair_reason(module: str, leaf: str) -> str | None:
    """Why ``p[module][leaf]`` reads Haiku's layout, with the Linen spelling; None if it may be Linen's."""
    nested = "/" in module
    if module in _COLLECTIONS or not (nested or leaf in _RENAMED) or not _HAIKU_PATH.match(module):
        return None
    parts = [part for part in module.split("/") if part and not part.startswith("~")]
    new_leaf, owner = _RENAMED.get(leaf, (leaf, "any module"))
    spelled = "".join(f'["{part}"]' for part in [*parts, new_leaf])
    return (
        f'`["{module}"]["{leaf}"]` indexes parameters in Haiku\'s layout, and after migration the tree is '
        f"Linen's: one level per module{', no `~` scopes' if '~' in module else ''} and Linen leaf names; "
        f"if the leaf belongs to {owner} this is `{spelled}` (`flaxify check` prints the exact mapping)"
    )


def _walk_reason(tree: str) -> str:
    return (
        f"walks `{tree}` as Haiku's two levels {{module: {{name: array}}}}; Linen's tree nests one level per "
        f"module, so the inner values may be sub-trees, not arrays: flatten it first, e.g. "
        f'`flax.traverse_util.flatten_dict({tree}, sep="/")` (keys like "mlp/linear_0/kernel")'
    )


def _holds_params(node: cst.BaseExpression) -> str | None:
    """The spelling of a name or attribute that by convention holds a parameter tree, else None."""
    if isinstance(node, cst.Name):
        name = node.value
    elif isinstance(node, cst.Attribute):
        name = node.attr.value
    else:
        return None
    if name == "params" or name.endswith("_params") or name.startswith("params_"):
        return code(node)
    return None


def _items_of(node: cst.BaseExpression) -> cst.BaseExpression | None:
    """``x`` for ``x.items()``."""
    if (
        isinstance(node, cst.Call)
        and not node.args
        and isinstance(node.func, cst.Attribute)
        and node.func.attr.value == "items"
    ):
        return node.func.value
    return None


def _params_walk(target: cst.BaseExpression, iterable: cst.BaseExpression) -> tuple[str, str] | None:
    """(tree, inner name) for ``for m, d in params.items()``; None for any other loop."""
    tree = _items_of(iterable)
    spelled = _holds_params(tree) if tree is not None else None
    if spelled is None or not isinstance(target, (cst.Tuple, cst.List)) or len(target.elements) != 2:
        return None
    value = target.elements[1].value
    return (spelled, value.value) if isinstance(value, cst.Name) else None


def _walks(node: cst.For | cst.CompFor, inner: str) -> bool:
    """True when ``node`` iterates ``<inner>.items()``."""
    tree = _items_of(node.iter)
    return isinstance(tree, cst.Name) and tree.value == inner


def _inner_fors(body: cst.BaseSuite) -> list[cst.For | cst.CompFor]:
    """The ``for`` statements and comprehension clauses anywhere inside a loop body."""
    return [node for node in walk(body) if isinstance(node, (cst.For, cst.CompFor))]
