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

    def collections(self) -> list[str]:
        return sorted({c for c, _ in self.flat})

    def leaves_at(self, collection: str, node: FlaxPath) -> dict[str, tuple[int, ...]]:
        """Direct leaves (name → shape) of ``node`` not consumed yet."""
        return {
            path[-1]: shape_of(leaf)
            for (c, path), leaf in self.flat.items()
            if c == collection and path[:-1] == node and (c, path) not in self.consumed
        }

    def children(self, collection: str, node: FlaxPath) -> set[str]:
        n = len(node)
        return {path[n] for (c, path) in self.flat if c == collection and len(path) > n + 1 and path[:n] == node}

    def nodes(self, collection: str) -> list[FlaxPath]:
        """Every node holding direct leaves, in creation order when known, else natural order."""
        found = {path[:-1] for (c, path) in self.flat if c == collection}
        return sorted(found, key=self._order_key)

    def module_type(self, node: FlaxPath) -> str | None:
        return self.modules.get(node)

    def _order_key(self, node: FlaxPath) -> tuple:
        order = list(self.modules)
        known = order.index(node) if node in self.modules else len(order)
        return (known, [_natural(part) for part in node])


def _natural(text: str) -> tuple:
    """``Dense_10`` sorts after ``Dense_2``."""
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text))
