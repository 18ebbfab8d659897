"""Read access to a Flax variables template for the mapping rules."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from flaxify.equivalence.trees import FlaxPath, flatten_flax, shape_of


class FlaxIndex:
    """A flat Flax template plus which leaves the mapping has already consumed."""

    def __init__(self, template: Mapping[str, Any], modules: Mapping[FlaxPath, str] | None = None) -> None:
        self.flat = flatten_flax(template)
        self.modules = dict(modules or {})
        self.consumed: set[tuple[str, FlaxPath]] = set()
        # Indexed once: rules ask for a node's leaves or children once per Haiku bucket.
        self._leaves: dict[tuple[str, FlaxPath], dict[str, tuple[int, ...]]] = {}
        self._children: dict[tuple[str, FlaxPath], set[str]] = {}
        for (collection, path), leaf in self.flat.items():
            self._leaves.setdefault((collection, path[:-1]), {})[path[-1]] = shape_of(leaf)
            for n in range(len(path) - 1):
                self._children.setdefault((collection, path[:n]), set()).add(path[n])
        self._order = {node: i for i, node in enumerate(self.modules)}

    def collections(self) -> list[str]:
        return sorted({c for c, _ in self.flat})

    def leaves_at(self, collection: str, node: FlaxPath) -> dict[str, tuple[int, ...]]:
        """Direct leaves (name → shape) of ``node`` not consumed yet."""
        leaves = self._leaves.get((collection, node), {})
        return {name: shape for name, shape in leaves.items() if (collection, (*node, name)) not in self.consumed}

    def children(self, collection: str, node: FlaxPath) -> set[str]:
        """Names of the sub-modules (nodes, not leaves) directly under ``node``."""
        return set(self._children.get((collection, node), set()))

    def nodes(self, collection: str) -> list[FlaxPath]:
        """Every node holding direct leaves, in creation order when known, else natural order."""
        found = {node for (c, node) in self._leaves if c == collection}
        return sorted(found, key=self.order_key)

    def module_type(self, node: FlaxPath) -> str | None:
        return self.modules.get(node)

    def order_key(self, node: FlaxPath) -> tuple:
        """Creation order where the module table knows it, then natural name order."""
        return (self._order.get(node, len(self._order)), [_natural(part) for part in node])


def _natural(text: str) -> tuple:
    """``Dense_10`` sorts after ``Dense_2``."""
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text))
