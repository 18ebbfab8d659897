"""Haiku params/state → Flax variables, every leaf accounted for.

Two passes. **By name**: each Haiku bucket's module path becomes a Flax path
(:mod:`naming`) and the first rule that recognises the pair converts its
leaves (LSTM, MHA, BatchNorm state, else rename). A module a method *returned*
(Haiku ``p/x/~method/child``, built in ``x``'s method scope) is built by the
caller in Linen (``@nn.nowrap``, ``flaxify.migrate.factory_methods``): when
the by-name path is no Flax node and the caller's ``p/child`` is, that is the
path. **By order**: buckets left
over are paired with Flax nodes left over that sit under the same parent, in
creation order, when their shapes fit (Flax auto-names such as ``Dense_0``);
whatever is still left is paired globally in order, but only if *everything*
remaining pairs up. When the Haiku root may or may not have a Flax
counterpart, both readings are tried; the one mapping more leaves wins, and on
a tie the one placing more of them by name. Anything unmapped, left over or of the wrong shape is
reported (``map_params`` raises :class:`ParamMappingError`); nothing is guessed.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from flaxify.equivalence import naming, rule_batchnorm, rule_gru, rule_lstm, rule_mha, rule_rename
from flaxify.equivalence.errors import ParamMappingError
from flaxify.equivalence.index import FlaxIndex
from flaxify.equivalence.plan import Dropped, Mismatch, RuleResult, Transfer
from flaxify.equivalence.trees import (
    FlaxPath,
    HaikuBucket,
    HaikuLeaf,
    describe,
    dtype_of,
    flax_path_text,
    haiku_buckets,
    haiku_leaf_values,
    shape_of,
    unflatten_flax,
)


@dataclass(frozen=True)
class MappingPlan:
    """How every Haiku leaf lands in the Flax tree, and what did not."""

    transfers: tuple[Transfer, ...]
    mismatches: tuple[Mismatch, ...]
    unmapped: tuple[HaikuLeaf, ...]
    leftover: tuple[tuple[str, FlaxPath], ...]
    dropped: tuple[Dropped, ...]
    module_paths: Mapping[str, FlaxPath]
    haiku_meta: Mapping[HaikuLeaf, tuple[tuple[int, ...], str]]
    flax_meta: Mapping[tuple[str, FlaxPath], tuple[tuple[int, ...], str]]
    notes: tuple[str, ...] = ()
    aliases: Mapping[FlaxPath, FlaxPath] = field(default_factory=dict)
    drop_root: bool = False

    def flax_module(self, haiku_module: str) -> FlaxPath:
        """The Flax module path of any Haiku module path, following by-order pairings."""
        if haiku_module in self.module_paths:
            return self.module_paths[haiku_module]
        return _aliased(naming.flax_module_path(haiku_module, root_is_module=self.drop_root), self.aliases)

    @property
    def complete(self) -> bool:
        return not (self.mismatches or self.unmapped or self.leftover)

    def apply(
        self,
        params: Mapping[str, Mapping[str, Any]],
        state: Mapping[str, Mapping[str, Any]] | None = None,
        *,
        linear_only: bool = False,
        collections: set[str] | None = None,
    ) -> dict[str, Any]:
        """Builds Flax variables from Haiku trees of the same structure (params, gradients, new state)."""
        leaves = haiku_leaf_values(params, state)
        flat: dict[tuple[str, FlaxPath], np.ndarray] = {}
        for t in self.transfers:
            if collections is not None and t.collection not in collections:
                continue
            if all(s in leaves for s in t.sources):
                _, dtype = self.flax_meta[(t.collection, t.flax_path)]
                flat[(t.collection, t.flax_path)] = t.value(leaves, linear_only=linear_only).astype(dtype)
        return unflatten_flax(flat)

    def error_message(self) -> str:
        lines = ["the Haiku and Flax variable trees do not map one to one:"]
        for m in self.mismatches:
            fx = flax_path_text(m.collection, m.flax_path)
            lines.append(f"  shape mismatch: Haiku {m.source} {m.haiku_shape} vs Flax {fx} {m.flax_shape} ({m.reason})")
        for leaf in self.unmapped:
            lines.append(f"  unmapped Haiku leaf: {leaf} {describe(*self.haiku_meta[leaf])}")
        for key in self.leftover:
            lines.append(f"  left-over Flax leaf: {flax_path_text(*key)} {describe(*self.flax_meta[key])}")
        return "\n".join(lines)


def map_params(
    haiku_params: Mapping[str, Mapping[str, Any]],
    haiku_state: Mapping[str, Mapping[str, Any]] | None,
    flax_variables_template: Mapping[str, Any],
    *,
    root_is_module: bool,
    flax_modules: Mapping[FlaxPath, str] | None = None,
) -> dict[str, Any]:
    """Returns Flax variables (``{'params': ..., 'batch_stats': ...}``) holding the Haiku values.

    Args:
      haiku_params: Haiku params, ``{'module/path': {'leaf': array}}``.
      haiku_state: Haiku state of the same form (or None).
      flax_variables_template: the Flax variables (arrays or ``ShapeDtypeStruct``).
      root_is_module: True when the Haiku side is an ``hk.Module`` subclass
        (its own name, the first path component, has no Flax counterpart).
      flax_modules: optional ``{flax module path: class name}`` in creation
        order (see :func:`flaxify.equivalence.flax_side.module_table`); it
        orders the structural fallback and identifies ``ConvTranspose``.

    Raises:
      ParamMappingError: naming every unmapped Haiku leaf, left-over Flax leaf
        and shape mismatch, with shapes.
    """
    plan = build_plan(
        haiku_params, haiku_state, flax_variables_template, root_is_module=root_is_module, flax_modules=flax_modules
    )
    if not plan.complete:
        raise ParamMappingError(plan.error_message())
    return plan.apply(haiku_params, haiku_state)


def build_plan(
    haiku_params: Mapping[str, Mapping[str, Any]],
    haiku_state: Mapping[str, Mapping[str, Any]] | None,
    template: Mapping[str, Any],
    *,
    root_is_module: bool,
    flax_modules: Mapping[FlaxPath, str] | None = None,
) -> MappingPlan:
    """Works out the mapping without raising (``compare`` reports what it finds)."""
    buckets = haiku_buckets(haiku_params, "params") + haiku_buckets(haiku_state, "state")
    readings = [(root_is_module, None)]
    root = naming.shared_root([b.module for b in buckets])
    if not root_is_module and root is not None and root not in FlaxIndex(template).children("params", ()):
        readings.append((True, f"the shared Haiku root '{root}/' has no Flax counterpart and was dropped"))
    best = None
    for drop_root, note in readings:
        candidate = _Mapper(buckets, template, drop_root, flax_modules).run(note)
        if best is None or candidate.score > best.score:
            best = candidate
    return best.plan


@dataclass
class _Mapper:
    """One attempt at a mapping under one reading of the Haiku root."""

    buckets: list[HaikuBucket]
    template: Mapping[str, Any]
    drop_root: bool
    flax_modules: Mapping[FlaxPath, str] | None
    results: dict[int, RuleResult] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.index = FlaxIndex(self.template, self.flax_modules)
        self.aliases: dict[FlaxPath, FlaxPath] = {}
        self.holders = {(collection, path[:-1]) for collection, path in self.index.flat}
        self.by_name: dict[tuple[str, str], FlaxPath] = {}
        # By-name paths of all buckets: a caller-scope reading never takes a node another bucket names.
        self.named = {naming.flax_module_path(b.module, root_is_module=self.drop_root) for b in self.buckets}

    @property
    def score(self) -> tuple[int, int]:
        """Leaves mapped, then leaves mapped *by name*: the better of two readings of the root.

        Equal-shape layers fill every unit by order under any reading, so a tie
        on the first count goes to the reading whose names place the leaves; the
        structural fallback only fills what names cannot.
        """
        transfers = [t for r in self.results.values() for t in r.transfers]
        return len(transfers), sum(t.by == "name" for t in transfers)

    def target(self, bucket: HaikuBucket) -> FlaxPath:
        key = (bucket.kind, bucket.module)
        if key not in self.by_name:
            self.by_name[key] = self._by_name_path(bucket)
        return _aliased(self.by_name[key], self.aliases)

    def _by_name_path(self, bucket: HaikuBucket) -> FlaxPath:
        """The by-name path; else the first caller-scope reading that is a Flax node holding leaves.

        A reading is taken only where the by-name path is no such node and no
        other bucket's by-name path is the reading, so it never competes with a
        by-name match.
        """
        path = naming.flax_module_path(bucket.module, root_is_module=self.drop_root)
        collections = ["params"] if bucket.kind == "params" else [c for c in self.index.collections() if c != "params"]
        if any((c, path) in self.holders for c in collections):
            return path
        for reading in caller_scope_readings(bucket.module, keep=1 if self.drop_root else 0):
            candidate = naming.flax_module_path(reading, root_is_module=self.drop_root)
            if candidate not in self.named and any((c, candidate) in self.holders for c in collections):
                return candidate
        return path

    def run(self, note: str | None) -> _Mapper:
        params = [i for i, b in enumerate(self.buckets) if b.kind == "params"]
        for i in params:
            self._by_name(i)
        self._by_order([i for i in params if i not in self.results])
        for i, b in enumerate(self.buckets):
            if b.kind == "state":
                self._state(i)
        self.plan = self._finish(note)
        return self

    def _record(self, i: int, result: RuleResult, haiku_target: FlaxPath) -> None:
        self.results[i] = result
        for t in result.transfers:
            self.index.consumed.add((t.collection, t.flax_path))
        for m in result.mismatches:
            self.index.consumed.add((m.collection, m.flax_path))
        if result.unit != haiku_target:
            self.aliases[haiku_target] = result.unit

    def _by_name(self, i: int) -> None:
        bucket = self.buckets[i]
        target = self.target(bucket)
        for rule in (rule_lstm.apply, rule_gru.apply, rule_mha.apply, rule_rename.apply):
            result = rule(bucket, target, self.index)
            if result is not None:
                self._record(i, result, target if rule is not rule_lstm.apply else target[:-1])
                return

    def _by_order(self, pending: list[int]) -> None:
        self._align_parents([i for i in pending if i not in self.results])
        pending = [i for i in pending if i not in self.results]
        units = self._free_units()
        groups: dict[FlaxPath, list[int]] = {}
        for i in pending:
            groups.setdefault(self.target(self.buckets[i])[:-1], []).append(i)
        for parent, members in groups.items():
            siblings = [u for u in units if u[:-1] == parent]
            self._align(self._suffix_order(members), siblings, all_or_nothing=False)
        rest = [i for i in pending if i not in self.results]
        self._align(rest, self._free_units(), all_or_nothing=True)

    def _align_parents(self, pending: list[int]) -> None:
        """Pairs an auto-named Flax parent with a Haiku parent whose children all map *by name*.

        A layer built in a loop keeps Flax's auto-name (``MultiHeadAttention_0``)
        while its own children keep Haiku's (``query``, ``key``, ``value``,
        ``linear``). Pairing those children one by one in creation order would
        swap equal-shaped projections; instead the Haiku parent
        (``multi_head_attention``) is paired with the first free Flax sibling,
        in creation order, under which *every* leaf of *every* child maps by
        name with no mismatch. Haiku parents sharing a base name are tried in
        Haiku's numbering order, so ``multi_head_attention_1`` takes the next one.
        """
        groups: dict[FlaxPath, list[int]] = {}
        for i in pending:
            missing = self._first_missing(self.target(self.buckets[i]))
            if missing is not None:
                groups.setdefault(missing, []).append(i)
        for missing in sorted(groups, key=lambda m: (m[:-1], _base_and_number(m[-1]))):
            members = groups[missing]
            for candidate in self._free_children(missing[:-1]):
                results = [self._by_name_under(i, missing, candidate) for i in members]
                if all(r is not None for r in results):
                    self.aliases[missing] = candidate
                    for i, result in zip(members, results, strict=True):
                        self._record(i, result, self.target(self.buckets[i]))  # type: ignore[arg-type]
                    break

    def _first_missing(self, target: FlaxPath) -> FlaxPath | None:
        """The shortest proper prefix of ``target`` that is no Flax node (None if all exist)."""
        for k in range(1, len(target)):
            if target[k - 1] not in self.index.children("params", target[: k - 1]):
                return target[:k]
        return None

    def _free_children(self, parent: FlaxPath) -> list[FlaxPath]:
        """Flax children of ``parent`` with no mapped leaf anywhere below, in creation order."""
        consumed = [path for c, path in self.index.consumed if c == "params"]
        touched = {path[:k] for path in consumed for k in range(len(path) + 1)}
        taken = set(self.aliases.values())
        children = [parent + (name,) for name in self.index.children("params", parent)]
        free = [c for c in children if c not in touched and c not in taken and self.index.children("params", c)]
        return sorted(free, key=self.index.order_key)

    def _by_name_under(self, i: int, missing: FlaxPath, candidate: FlaxPath) -> RuleResult | None:
        """The by-name result for bucket ``i`` if ``missing`` were ``candidate``, when it maps whole."""
        bucket = self.buckets[i]
        target = candidate + self.target(bucket)[len(missing):]
        for rule in (rule_lstm.apply, rule_gru.apply, rule_mha.apply, rule_rename.apply):
            result = rule(bucket, target, self.index)
            if result is None:
                continue
            sources = {s for t in result.transfers for s in t.sources}
            return result if not result.mismatches and len(sources) == len(bucket.leaves) else None
        return None

    def _free_units(self) -> list[FlaxPath]:
        """Flax nodes none of whose leaves are mapped yet (LSTM cells count as one node)."""
        nodes = self.index.nodes("params")
        cells = {n[:-1] for n in nodes if n[:-1] and rule_lstm.is_gate_node(n[:-1], self.index)}
        consumed = [path for c, path in self.index.consumed if c == "params"]
        holders = {path[:-1] for path in consumed}  # nodes with a mapped leaf of their own
        touched = {path[:k] for path in consumed for k in range(len(path))}  # ... or anywhere below
        units: list[FlaxPath] = []
        for node in nodes:
            unit, taken = (node[:-1], touched) if node[:-1] in cells else (node, holders)
            if unit not in units and unit not in taken:
                units.append(unit)
        return units

    def _align(self, members: list[int], units: list[FlaxPath], *, all_or_nothing: bool) -> None:
        """Pairs buckets with units in order, one queue per Flax class (``Dense_0, Dense_1, …``).

        Each bucket takes the head of the one queue it fits; if several heads
        fit, the earliest created wins when creation order is known, otherwise
        the pairing stops there (ambiguous, so not guessed).
        """
        if not members or not units or (all_or_nothing and len(members) != len(units)):
            return
        queues: dict[str, list[FlaxPath]] = {}
        for unit in units:
            queues.setdefault(self._class_key(unit), []).append(unit)
        paired: list[tuple[int, RuleResult]] = []
        for i in members:
            fits = [
                (q, r)
                for q, r in ((q, self._try_unit(self.buckets[i], queue[0])) for q, queue in queues.items() if queue)
                if r
            ]
            if len(fits) > 1 and self.flax_modules:
                fits = [min(fits, key=lambda f: self.index.order_key(queues[f[0]][0]))]
            if len(fits) != 1:
                break
            queue, result = fits[0]
            queues[queue].pop(0)
            paired.append((i, result))
        if all_or_nothing and len(paired) != len(members):
            return
        for i, result in paired:
            self._record(i, result, self.target(self.buckets[i]))

    def _suffix_order(self, members: list[int]) -> list[int]:
        """Puts ``linear, linear_1, …, linear_10`` in Haiku's numbering order.

        Haiku numbers same-named modules in creation order, but a tree that went
        through ``jax.tree.map`` comes back sorted as strings (``linear_10`` before
        ``linear_2``). Only positions held by one base name are permuted.
        """
        by_base: dict[str, list[int]] = {}
        for i in members:
            by_base.setdefault(_base_and_number(self.buckets[i].module)[0], []).append(i)
        out = list(members)
        for same in by_base.values():
            ordered = sorted(same, key=lambda i: _base_and_number(self.buckets[i].module)[1])
            for slot, i in zip(sorted(members.index(j) for j in same), ordered, strict=True):
                out[slot] = i
        return out

    def _class_key(self, unit: FlaxPath) -> str:
        kind = self.index.module_type(unit)
        return kind if kind else re.sub(r"_\d+$", "", unit[-1] if unit else "")

    def _try_unit(self, bucket: HaikuBucket, unit: FlaxPath) -> RuleResult | None:
        """A bucket fits a unit by order only if every leaf converts with no mismatch."""
        for rule in (rule_lstm.apply, rule_rename.apply):
            result = rule(bucket, unit, self.index, by="order")
            if result is None:
                continue
            sources = {s for t in result.transfers for s in t.sources}
            if not result.mismatches and len(sources) == len(bucket.leaves):
                return result
        return None

    def _state(self, i: int) -> None:
        bucket = self.buckets[i]
        target = self.target(bucket)
        result = rule_batchnorm.apply(bucket, target, self.index)
        if result is None:
            for collection in self.index.collections():
                if collection != "params":
                    result = rule_rename.apply(bucket, target, self.index, collection=collection)
                    if result is not None:
                        break
        if result is not None:
            self.results[i] = result
            for t in result.transfers:
                self.index.consumed.add((t.collection, t.flax_path))

    def _finish(self, note: str | None) -> MappingPlan:
        transfers = [t for r in self.results.values() for t in r.transfers]
        mismatches = [m for r in self.results.values() for m in r.mismatches]
        dropped = [d for r in self.results.values() for d in r.dropped]
        seen = {s for t in transfers for s in t.sources} | {m.source for m in mismatches} | {d.source for d in dropped}
        haiku_meta = {b.leaf(n): (shape_of(v), dtype_of(v)) for b in self.buckets for n, v in b.leaves.items()}
        flax_meta = {k: (shape_of(v), _dtype(v)) for k, v in self.index.flat.items()}
        mapped = {(t.collection, t.flax_path) for t in transfers} | {(m.collection, m.flax_path) for m in mismatches}
        module_paths = {b.module: self.target(b) for b in self.buckets}
        return MappingPlan(
            transfers=tuple(transfers),
            mismatches=tuple(mismatches),
            unmapped=tuple(leaf for leaf in haiku_meta if leaf not in seen),
            leftover=tuple(k for k in self.index.flat if k not in mapped),
            dropped=tuple(dropped),
            module_paths=module_paths,
            haiku_meta=haiku_meta,
            flax_meta=flax_meta,
            notes=(note,) if note and self.drop_root else (),
            aliases=dict(self.aliases),
            drop_root=self.drop_root,
        )


def caller_scope_readings(haiku_module: str, *, keep: int = 0) -> list[str]:
    """Where a module built in a method scope lives when its caller built it: fewest moves first.

    Haiku builds a module that ``x.method()`` returns inside ``x``'s scope
    ``~method``; Linen's ``@nn.nowrap`` twin builds it in the caller's scope,
    the one holding ``x``: ``p/x/~method/child/~/linear`` reads as
    ``p/child/~/linear``. With several method scopes on the path, every subset
    of them is a reading (fewer first, then left to right). ``keep`` leading
    components never move (1 when the Haiku root module is Flax's unnamed
    root: a module its method returned was built outside the Flax tree).
    """
    parts = haiku_module.split("/")
    scopes = [k for k in range(keep + 1, len(parts) - 1) if parts[k].startswith("~") and parts[k] != "~"]
    readings = []
    for count in range(1, len(scopes) + 1):
        for chosen in itertools.combinations(scopes, count):
            dropped = {k for scope in chosen for k in (scope - 1, scope)}
            if len(dropped) == 2 * count:  # `x/~m` pairs do not overlap
                readings.append("/".join(p for k, p in enumerate(parts) if k not in dropped))
    return readings


def _base_and_number(module: str) -> tuple[str, int]:
    """``a/~/linear_3`` → ``('a/~/linear', 3)``; an unnumbered name counts as 0."""
    match = re.match(r"^(.*?)(?:_(\d+))?$", module)
    return match.group(1), int(match.group(2) or 0)


def _aliased(path: FlaxPath, aliases: Mapping[FlaxPath, FlaxPath]) -> FlaxPath:
    """A parent paired by order carries its children along (``lstm/linear`` → ``LSTMCell_0/linear``)."""
    for n in range(len(path), 0, -1):
        if path[:n] in aliases:
            return aliases[path[:n]] + path[n:]
    return path


def _dtype(leaf: Any) -> str:
    return str(np.dtype(leaf.dtype)) if hasattr(leaf, "dtype") else dtype_of(leaf)
