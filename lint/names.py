"""Resolve names to qualified names through the imports of a module.

``import jax.numpy as jnp`` then ``jnp.sum`` resolves to ``jax.numpy.sum``;
``from jax import jit`` then ``jit`` resolves to ``jax.jit``. This is the small
custom import tracker the speed budget asks for (no LibCST scope providers).
"""

from __future__ import annotations

import ast

# Internal spellings that libraries use for their own public objects, mapped to
# the public name the rule tables use.
_CANONICAL: dict[str, str] = {
    "flax.linen.module.Module": "flax.linen.Module",
    "flax.linen.module.compact": "flax.linen.compact",
    "flax.linen.module.nowrap": "flax.linen.nowrap",
    "flax.linen.module.compact_name_scope": "flax.linen.compact_name_scope",
    "flax.nnx.module.Module": "flax.nnx.Module",
    "flax.nnx.Module": "flax.nnx.Module",
    "flax.experimental.nnx.Module": "flax.nnx.Module",
    "haiku._src.module.Module": "haiku.Module",
    "haiku._src.base.get_parameter": "haiku.get_parameter",
    "haiku._src.base.next_rng_key": "haiku.next_rng_key",
    "jax.experimental.shard_map.shard_map": "jax.shard_map",
    "jax.tree.map": "jax.tree_util.tree_map",
    "jax.tree_map": "jax.tree_util.tree_map",
}


def canonical(qualname: str) -> str:
    """Returns the public spelling of ``qualname`` (``jax.lax`` for ``jax._src.lax.lax``...)."""
    return _CANONICAL.get(qualname, qualname)


class ImportMap:
    """Local name -> qualified name, for one module."""

    __slots__ = ("module", "package", "bound")

    def __init__(self, module: str, is_package: bool) -> None:
        self.module = module
        self.package = module if is_package else module.rpartition(".")[0]
        self.bound: dict[str, str] = {}

    def add_import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.asname:
                self.bound[alias.asname] = alias.name
            else:
                top = alias.name.partition(".")[0]
                self.bound[top] = top

    def add_import_from(self, node: ast.ImportFrom) -> None:
        base = self._absolute(node.module or "", node.level)
        for alias in node.names:
            if alias.name == "*":
                continue
            target = f"{base}.{alias.name}" if base else alias.name
            self.bound[alias.asname or alias.name] = target

    def _absolute(self, module: str, level: int) -> str:
        if level == 0:
            return module
        parts = self.package.split(".") if self.package else []
        if level > 1:
            parts = parts[: len(parts) - (level - 1)]
        prefix = ".".join(parts)
        if prefix and module:
            return f"{prefix}.{module}"
        return prefix or module

    def qualname(self, node: ast.expr) -> str | None:
        """``jnp.sum`` -> ``jax.numpy.sum``; None for anything not rooted in an import."""
        attrs: list[str] = []
        while isinstance(node, ast.Attribute):
            attrs.append(node.attr)
            node = node.value
        if not isinstance(node, ast.Name):
            return None
        root = self.bound.get(node.id)
        if root is None:
            return None
        if attrs:
            attrs.reverse()
            return canonical(root + "." + ".".join(attrs))
        return canonical(root)


def dotted(node: ast.expr) -> str | None:
    """``a.b.c`` as a string, without resolving imports; None if not a plain chain."""
    attrs: list[str] = []
    while isinstance(node, ast.Attribute):
        attrs.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    attrs.append(node.id)
    return ".".join(reversed(attrs))
