"""``hk.data_structures`` conversions and structure helpers on Linen's nested trees.

Haiku's parameter trees have two levels, ``{module_name: {name: value}}`` with
``module_name`` like ``"outer/~/linear"``; Linen's nest one level per module.
After migration every tree is a plain nested dict, so:

* ``to_mutable_dict(p)`` and ``to_haiku_dict(p)`` (Haiku: a fresh mutable
  ``dict`` copy of the containers, the leaves shared) become
  ``flax.core.unfreeze(p)``, which copies plain dicts and ``FrozenDict`` alike
  into fresh nested dicts and shares the leaves. (Haiku's ``to_mutable_dict``
  reuses the inner dicts of an already-plain input; ``unfreeze`` copies them
  too, so a write through the copy never reaches the original, which is the
  only difference and the one a caller wants.) ``jax.tree.map(lambda x: x, p)``
  would not do: it keeps a ``FrozenDict`` frozen. ``to_immutable_dict(p)``
  (Haiku's immutable ``FlatMap``) becomes ``flax.core.freeze(p)`` (Flax's
  immutable ``FrozenDict``, a pytree with the same leaves).
* ``filter``, ``partition``, ``partition_n``, ``merge``, ``traverse``, ``map``
  and ``is_subset`` keep their names and signatures and become small
  functions the engine emits once per file. They flatten the tree with
  ``flax.traverse_util.flatten_dict`` and hand the callback ``(module_name,
  name, value)`` where ``module_name`` is the ``/``-joined path of the leaf's
  parents and ``name`` its key, visiting leaves in Haiku's order (sorted by
  module name, then name). ``map`` returns
  a fresh tree of ``fn(module_name, name, value)``; ``is_subset(subset=,
  superset=)`` compares the leaf paths (Haiku's ``(module_name, name)``
  pairs), so an empty module counts for nothing, as in Haiku.
* ``tree_size`` / ``tree_bytes`` only sum over the leaves (``utilities.py``).
  ``hk.data_structures.structure`` is no Haiku API and stays under a TODO.

The helpers are exact on the tree they get, but that tree carries Flax names
(``"outer/Dense_0"``, ``"kernel"``) where Haiku had ``"outer/~/linear"``,
``"w"``. A callback that may read the names is therefore rewritten *and*
marked with a TODO; one whose parameters for the names are provably unused
(``lambda m, n, v: v.ndim > 1``) needs nothing more.
"""

from __future__ import annotations

from collections.abc import Callable

import libcst as cst

from flaxify.migrate.rewrite import ImportSpec, Rewrite, Unsupported

FLAX_CORE_IMPORT = ImportSpec("flax.core", None, None)
TRAVERSE_UTIL_IMPORT = ImportSpec("flax", "traverse_util", None)

#: Haiku's copies and freezes -> the Flax function with the same result on a nested dict.
CONVERSIONS = {
    "haiku.data_structures.to_mutable_dict": "flax.core.unfreeze",
    "haiku.data_structures.to_haiku_dict": "flax.core.unfreeze",
    "haiku.data_structures.to_immutable_dict": "flax.core.freeze",
}

# Haiku visits leaves sorted by module name, then name; the helpers sort the same way.
_ORDER = 'key=lambda p: ("/".join(p[:-1]), p[-1])'

TRAVERSE_SOURCE = f'''def traverse(structure):
    """Haiku's hk.data_structures.traverse on a nested tree: yields (module_name, name, value), module_name the "/"-joined parent path."""
    flat = traverse_util.flatten_dict(structure)
    for path in sorted(flat, {_ORDER}):
        yield "/".join(path[:-1]), path[-1], flat[path]
'''

PARTITION_N_SOURCE = f'''def partition_n(fn, structure, n):
    """Haiku's hk.data_structures.partition_n on a nested tree: leaf goes to output fn(module_name, name, value)."""
    flat = traverse_util.flatten_dict(structure)
    out = [{{}} for _ in range(n)]
    for path in sorted(flat, {_ORDER}):
        i = fn("/".join(path[:-1]), path[-1], flat[path])
        assert 0 <= i < n, f"{{i}} must be in range [0, {{n}})"
        out[i][path] = flat[path]
    return tuple(traverse_util.unflatten_dict(o) for o in out)
'''

PARTITION_SOURCE = f'''def partition(predicate, structure):
    """Haiku's hk.data_structures.partition on a nested tree: (leaves where predicate(module_name, name, value), the rest)."""
    flat = traverse_util.flatten_dict(structure)
    true, false = {{}}, {{}}
    for path in sorted(flat, {_ORDER}):
        side = true if predicate("/".join(path[:-1]), path[-1], flat[path]) else false
        side[path] = flat[path]
    return traverse_util.unflatten_dict(true), traverse_util.unflatten_dict(false)
'''

FILTER_SOURCE = f'''def filter(predicate, structure):  # noqa: A001 (Haiku's name)
    """Haiku's hk.data_structures.filter on a nested tree: keeps the leaves where predicate(module_name, name, value)."""
    flat = traverse_util.flatten_dict(structure)
    kept = {{}}
    for path in sorted(flat, {_ORDER}):
        if predicate("/".join(path[:-1]), path[-1], flat[path]):
            kept[path] = flat[path]
    return traverse_util.unflatten_dict(kept)
'''

MERGE_SOURCE = f'''def merge(*structures, check_duplicates=False):
    """Haiku's hk.data_structures.merge on nested trees: one tree with every path; later structures win."""
    shaped = lambda a: (a.shape, a.dtype) if hasattr(a, "shape") and hasattr(a, "dtype") else None
    out = {{}}
    for structure in structures:
        flat = traverse_util.flatten_dict(structure)
        for path in sorted(flat, {_ORDER}):
            if check_duplicates and path in out and shaped(out[path]) != shaped(flat[path]):
                raise ValueError(
                    f"Duplicate array found with different shape/dtype for {{'/'.join(path[:-1])}}.{{path[-1]}}:"
                    f" {{out[path]!r}} vs {{flat[path]!r}}."
                )
            out[path] = flat[path]
    return traverse_util.unflatten_dict(out)
'''

MAP_SOURCE = f'''def map(fn, structure):  # noqa: A001 (Haiku's name)
    """Haiku's hk.data_structures.map on a nested tree: a new tree of fn(module_name, name, value), called in Haiku's order."""
    flat = traverse_util.flatten_dict(structure)
    out = {{}}
    for path in sorted(flat, {_ORDER}):
        out[path] = fn("/".join(path[:-1]), path[-1], flat[path])
    return traverse_util.unflatten_dict(out)
'''

IS_SUBSET_SOURCE = '''def is_subset(*, subset, superset):
    """Haiku's hk.data_structures.is_subset on nested trees: every leaf path of subset is a leaf path of superset."""
    return set(traverse_util.flatten_dict(subset)) <= set(traverse_util.flatten_dict(superset))
'''

#: Haiku name -> emitted source; the helper has Haiku's name and signature.
HELPERS = {
    "traverse": TRAVERSE_SOURCE,
    "partition_n": PARTITION_N_SOURCE,
    "partition": PARTITION_SOURCE,
    "filter": FILTER_SOURCE,
    "merge": MERGE_SOURCE,
    "map": MAP_SOURCE,
    "is_subset": IS_SUBSET_SOURCE,
}
#: The calls renamed to an emitted helper.
FUNCTIONS = frozenset(f"haiku.data_structures.{tail}" for tail in HELPERS)
#: Every call this module rewrites (expressions.py dispatches on it).
CALLS = FUNCTIONS | frozenset(CONVERSIONS)

# Which argument is the callback that receives (module_name, name, value).
_CALLBACK = {"filter": "predicate", "partition": "predicate", "partition_n": "fn", "map": "fn"}

NAMES_NOTE = (
    "the callback now sees Flax names (module_name like 'outer/Dense_0' without '~', name 'kernel' not 'w'):"
    " check the names it tests"
)


def helper_source(qualname: str) -> tuple[str, str, tuple[ImportSpec, ...]] | None:
    """``(name, source, imports)`` of the helper emitted for ``haiku.data_structures.<tail>``, else None.

    Keyed by the qualified name, not the tail: ``hk.map`` (a lifted transform) is not this ``map``.
    """
    module, _, tail = qualname.rpartition(".")
    source = HELPERS.get(tail) if module == "haiku.data_structures" else None
    if source is None:
        return None
    return tail, source, (TRAVERSE_UTIL_IMPORT,)


def rewrite(
    call: cst.Call, qualname: str, module: cst.Module, haiku_name: Callable[[cst.CSTNode], str | None]
) -> Rewrite | Unsupported:
    """One ``hk.data_structures`` call of :data:`CALLS` -> its Flax form.

    ``module`` is the file being migrated and ``haiku_name`` the engine's resolver:
    the emitted ``filter`` would shadow the builtin, so a file that uses a
    non-Haiku ``filter`` keeps the Haiku call under a TODO.
    """
    tail = qualname.rsplit(".", 1)[-1]
    if qualname in CONVERSIONS:
        if len(call.args) != 1 or call.args[0].star:
            return Unsupported(f"hk.data_structures.{tail} takes one tree argument")
        func = cst.parse_expression(CONVERSIONS[qualname])
        return Rewrite(call.with_changes(func=func), (FLAX_CORE_IMPORT,))
    if tail in _bare_names(module, haiku_name):
        return Unsupported(
            f"the exact rewrite emits a helper named {tail}, which would shadow the {tail} this file already uses;"
            f" use traverse_util.flatten_dict by hand"
        )
    renamed = call.with_changes(func=cst.Name(tail))
    note = NAMES_NOTE if tail in _CALLBACK and _may_read_names(_callback(call, _CALLBACK[tail])) else None
    return Rewrite(renamed, note=note)


def _callback(call: cst.Call, keyword: str) -> cst.BaseExpression | None:
    """The callback argument (first positional or ``keyword=``), if present."""
    for index, arg in enumerate(call.args):
        if arg.keyword is not None and arg.keyword.value == keyword:
            return arg.value
        if index == 0 and arg.keyword is None and not arg.star:
            return arg.value
    return None


def _may_read_names(callback: cst.BaseExpression | None) -> bool:
    """False only for a lambda whose module_name and name parameters are never referenced."""
    if not isinstance(callback, cst.Lambda):
        return True  # a def or a variable: its body is not here to read
    params = callback.params
    positional = [*params.posonly_params, *params.params]
    if isinstance(params.star_arg, cst.Param) or len(positional) < 2:
        return True  # *args or fewer than two named parameters: the names may be read through them
    names = {p.name.value for p in positional[:2]}
    return bool(names & _bare_names(callback.body))


class _BareNames(cst.CSTVisitor):
    """Names used as values (``filter(...)``), not attributes (``hk.data_structures.filter``) nor Haiku imports."""

    def __init__(self, haiku_name: Callable[[cst.CSTNode], str | None] | None) -> None:
        self.names: set[str] = set()
        self._haiku_name = haiku_name

    def visit_Import(self, node: cst.Import) -> bool:
        return False

    def visit_ImportFrom(self, node: cst.ImportFrom) -> bool:
        return False

    def visit_Attribute(self, node: cst.Attribute) -> bool:
        node.value.visit(self)
        return False

    def visit_Name(self, node: cst.Name) -> None:
        if self._haiku_name is None or self._haiku_name(node) is None:
            self.names.add(node.value)


def _bare_names(node: cst.CSTNode, haiku_name: Callable[[cst.CSTNode], str | None] | None = None) -> frozenset[str]:
    visitor = _BareNames(haiku_name)
    node.visit(visitor)
    return frozenset(visitor.names)
