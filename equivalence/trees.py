"""Flat views of Haiku and Flax variable trees, shared by the mapping rules.

Haiku trees are two levels deep (``{'mlp/~/linear_0': {'w': ...}}``); Flax trees
are nested per module inside collections (``{'params': {'linear_0': {'kernel': ...}}}``).
Both are flattened to path-keyed dicts so that rules can look leaves up directly.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

FlaxPath = tuple[str, ...]


@dataclass(frozen=True)
class HaikuLeaf:
    """One Haiku leaf: ``kind`` is ``'params'`` or ``'state'``."""

    kind: str
    module: str
    name: str

    def __str__(self) -> str:
        prefix = "" if self.kind == "params" else "state:"
        return f"{prefix}{self.module}/{self.name}"


@dataclass(frozen=True)
class HaikuBucket:
    """All leaves of one Haiku module path, in creation order."""

    kind: str
    module: str
    leaves: Mapping[str, Any]

    def leaf(self, name: str) -> HaikuLeaf:
        return HaikuLeaf(self.kind, self.module, name)


def haiku_buckets(tree: Mapping[str, Mapping[str, Any]] | None, kind: str) -> list[HaikuBucket]:
    """Lists the buckets of a Haiku params or state tree in creation (insertion) order."""
    return [HaikuBucket(kind, module, dict(leaves)) for module, leaves in (tree or {}).items()]


def haiku_leaf_values(
    params: Mapping[str, Mapping[str, Any]] | None, state: Mapping[str, Mapping[str, Any]] | None = None
) -> dict[HaikuLeaf, Any]:
    """``{HaikuLeaf: array}`` for a params tree and a state tree."""
    out = {HaikuLeaf("params", m, n): v for m, leaves in (params or {}).items() for n, v in leaves.items()}
    out.update({HaikuLeaf("state", m, n): v for m, leaves in (state or {}).items() for n, v in leaves.items()})
    return out


def flatten_flax(variables: Mapping[str, Any]) -> dict[tuple[str, FlaxPath], Any]:
    """Flattens ``{'params': {...}, 'batch_stats': {...}}`` to ``{(collection, path): leaf}``."""
    flat: dict[tuple[str, FlaxPath], Any] = {}
    for collection, tree in variables.items():
        for path, leaf in _walk(tree, ()):
            flat[(str(collection), path)] = leaf
    return flat


def _walk(tree: Any, prefix: FlaxPath) -> Iterator[tuple[FlaxPath, Any]]:
    if isinstance(tree, Mapping):
        for key, sub in tree.items():
            yield from _walk(sub, prefix + (str(key),))
    else:
        yield prefix, tree


def unflatten_flax(flat: Mapping[tuple[str, FlaxPath], Any]) -> dict[str, Any]:
    """Inverse of :func:`flatten_flax`."""
    out: dict[str, Any] = {}
    for (collection, path), leaf in flat.items():
        node = out.setdefault(collection, {})
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = leaf
    return out


def shape_of(leaf: Any) -> tuple[int, ...]:
    return tuple(int(d) for d in np.shape(leaf))


def dtype_of(leaf: Any) -> str:
    return str(np.dtype(leaf.dtype)) if hasattr(leaf, "dtype") else str(np.asarray(leaf).dtype)


def describe(shape: tuple[int, ...], dtype: str) -> str:
    """``f32[8,4]``-style text for reports (the SPEC notation)."""
    short = {"float32": "f32", "float16": "f16", "bfloat16": "bf16", "float64": "f64", "int32": "i32", "int64": "i64"}
    return f"{short.get(dtype, dtype)}[{','.join(map(str, shape))}]"


def flax_path_text(collection: str, path: FlaxPath) -> str:
    return "/".join((collection,) + path)
