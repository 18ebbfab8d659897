"""The ``hk.data_structures`` rewrites run like Haiku's own functions on equivalent trees.

The helpers are taken from real migrated source (``migrate_source`` output,
executed), then compared with ``haiku.data_structures`` on a two-level Haiku
tree and the nested Linen tree holding the *same leaf objects*: Haiku's
``"outer/~/inner"`` / ``"w"`` is Linen's ``("outer", "inner", "kernel")``.
"""

from __future__ import annotations

import collections
import itertools
import re
from typing import Any

import flax.core
import haiku as hk
import jax
import jax.numpy as jnp
import pytest
from flax import traverse_util

from flaxify.migrate import migrate_source

SOURCE = b'''import haiku as hk


def use(params, other):
    return (
        hk.data_structures.filter(lambda m, n, v: v.ndim > 1, params),
        hk.data_structures.partition(lambda m, n, v: v.ndim > 1, params),
        hk.data_structures.partition_n(lambda m, n, v: v.ndim, params, 3),
        hk.data_structures.merge(params, other),
        list(hk.data_structures.traverse(params)),
        hk.data_structures.to_mutable_dict(params),
        hk.data_structures.to_immutable_dict(params),
        hk.data_structures.to_haiku_dict(params),
    )
'''

NAMES = {"w": "kernel", "b": "bias", "scale": "scale", "offset": "offset"}

Tree = dict[str, Any]


@pytest.fixture(scope="module")
def migrated() -> str:
    return migrate_source(SOURCE, "use.py").source.decode()


@pytest.fixture(scope="module")
def helpers(migrated: str) -> dict[str, Any]:
    namespace: dict[str, Any] = {}
    exec(compile(migrated, "use.py", "exec"), namespace)  # noqa: S102 (the emitted helpers, run as a user would)
    return namespace


@pytest.fixture(scope="module")
def trees() -> tuple[Tree, Tree]:
    """An equivalent (Haiku, Linen) pair sharing leaf objects."""
    keys = iter(jax.random.split(jax.random.key(0), 8))
    leaf = lambda *shape: jax.random.normal(next(keys), shape)
    haiku = {
        "mlp/~/linear_0": {"w": leaf(3, 4), "b": leaf(4)},
        "mlp/~/linear_1": {"w": leaf(4, 2), "b": leaf(2)},
        "norm": {"scale": leaf(2), "offset": leaf(2)},
        "norm/~/proj": {"w": leaf(2, 2)},
    }
    linen: Tree = {}
    for module_name, name, value in hk.data_structures.traverse(haiku):
        node = linen
        for part in module_name.split("/~/"):
            node = node.setdefault(part, {})
        node[NAMES[name]] = value
    return haiku, linen


def as_paths(tree: Any, *, haiku: bool) -> dict[tuple[str, ...], Any]:
    """Leaves by Linen path; a Haiku tree is mapped through the module and parameter names."""
    if haiku:
        return {(*m.split("/~/"), NAMES[n]): v for m, n, v in hk.data_structures.traverse(tree)}
    return traverse_util.flatten_dict(flax.core.unfreeze(tree))


def assert_same(haiku_tree: Any, linen_tree: Any) -> None:
    expected, got = as_paths(haiku_tree, haiku=True), as_paths(linen_tree, haiku=False)
    assert expected.keys() == got.keys()
    assert all(got[path] is expected[path] for path in expected)  # the very same leaves, not copies


def test_migrated_source_has_no_haiku_and_no_todo(migrated: str) -> None:
    assert "import haiku" not in migrated
    assert re.search(r"\bhk\.[\w.]+\(", migrated) is None  # no Haiku call left (docstrings name them)
    assert "TODO(flaxify)" not in migrated  # every callback above reads only the value
    for name in ("filter", "partition", "partition_n", "merge", "traverse"):
        assert migrated.count(f"\ndef {name}(") == 1, name


@pytest.mark.parametrize(
    "predicate", [lambda m, n, v: v.ndim > 1, lambda m, n, v: v.shape[-1] == 2, lambda m, n, v: False], ids=["matrix", "width2", "none"]
)
def test_filter_and_partition_match_haiku(helpers: dict[str, Any], trees: tuple[Tree, Tree], predicate: Any) -> None:
    haiku, linen = trees
    assert_same(hk.data_structures.filter(predicate, haiku), helpers["filter"](predicate, linen))
    for hk_part, linen_part in zip(hk.data_structures.partition(predicate, haiku), helpers["partition"](predicate, linen), strict=True):
        assert_same(hk_part, linen_part)


def test_filter_drops_emptied_modules_like_haiku(helpers: dict[str, Any], trees: tuple[Tree, Tree]) -> None:
    haiku, linen = trees
    assert hk.data_structures.filter(lambda m, n, v: False, haiku) == {} == helpers["filter"](lambda m, n, v: False, linen)


def test_partition_n_matches_haiku(helpers: dict[str, Any], trees: tuple[Tree, Tree]) -> None:
    haiku, linen = trees
    fn = lambda m, n, v: v.ndim
    for hk_part, linen_part in zip(hk.data_structures.partition_n(fn, haiku, 3), helpers["partition_n"](fn, linen, 3), strict=True):
        assert_same(hk_part, linen_part)


def test_partition_n_visits_modules_in_haikus_order(helpers: dict[str, Any], trees: tuple[Tree, Tree]) -> None:
    """Haiku's own docstring example: one output per module, numbered in visiting order."""
    haiku, linen = trees

    def by_module(partition_n: Any, tree: Tree) -> tuple[Tree, ...]:
        counter = itertools.count()
        index = collections.defaultdict(lambda: next(counter))
        return partition_n(lambda m, n, v: index[m], tree, 4)

    for hk_part, linen_part in zip(by_module(hk.data_structures.partition_n, haiku), by_module(helpers["partition_n"], linen), strict=True):
        assert_same(hk_part, linen_part)


def test_partition_n_rejects_out_of_range_like_haiku(helpers: dict[str, Any], trees: tuple[Tree, Tree]) -> None:
    haiku, linen = trees
    with pytest.raises(AssertionError, match=r"must be in range \[0, 2\)"):
        hk.data_structures.partition_n(lambda m, n, v: 2, haiku, 2)
    with pytest.raises(AssertionError, match=r"must be in range \[0, 2\)"):
        helpers["partition_n"](lambda m, n, v: 2, linen, 2)


def test_traverse_yields_the_mapped_names_in_haikus_order(helpers: dict[str, Any], trees: tuple[Tree, Tree]) -> None:
    haiku, linen = trees
    expected = [(m.replace("/~/", "/"), NAMES[n], v) for m, n, v in hk.data_structures.traverse(haiku)]
    got = list(helpers["traverse"](linen))
    assert [(m, n) for m, n, _ in got] == [(m, n) for m, n, _ in expected]
    assert all(g is e for (*_, g), (*_, e) in zip(got, expected, strict=True))


def test_merge_matches_haiku_and_later_wins(helpers: dict[str, Any], trees: tuple[Tree, Tree]) -> None:
    haiku, linen = trees
    is_matrix = lambda m, n, v: v.ndim > 1
    hk_a, hk_b = hk.data_structures.partition(is_matrix, haiku)
    fl_a, fl_b = helpers["partition"](is_matrix, linen)
    assert_same(hk.data_structures.merge(hk_b, hk_a), helpers["merge"](fl_b, fl_a))
    # An overlapping path: the later structure's leaf wins in both.
    hk_new = {"norm": {"scale": jnp.zeros(2)}}
    fl_new = {"norm": {"scale": hk_new["norm"]["scale"]}}
    assert_same(hk.data_structures.merge(haiku, hk_new), helpers["merge"](linen, fl_new))


def test_merge_check_duplicates_like_haiku(helpers: dict[str, Any], trees: tuple[Tree, Tree]) -> None:
    haiku, linen = trees
    bad = jnp.zeros(5)
    with pytest.raises(ValueError, match="Duplicate array found with different shape/dtype for norm.scale"):
        hk.data_structures.merge(haiku, {"norm": {"scale": bad}}, check_duplicates=True)
    with pytest.raises(ValueError, match="Duplicate array found with different shape/dtype for norm.scale"):
        helpers["merge"](linen, {"norm": {"scale": bad}}, check_duplicates=True)
    same_shape = {"norm": {"scale": jnp.ones(2)}}
    assert_same(hk.data_structures.merge(haiku, same_shape, check_duplicates=True), helpers["merge"](linen, same_shape, check_duplicates=True))


@pytest.mark.parametrize("name", ["to_mutable_dict", "to_haiku_dict"])
def test_copies_are_fresh_dicts_sharing_leaves(migrated: str, trees: tuple[Tree, Tree], name: str) -> None:
    """Haiku thaws its immutable FlatMap (what older init returned) into fresh dicts at every level; so does unfreeze."""
    haiku, linen = trees
    assert "flax.core.unfreeze(params)" in migrated
    hk_frozen, linen_frozen = hk.data_structures.to_immutable_dict(haiku), flax.core.freeze(linen)
    pairs = [(hk_frozen, getattr(hk.data_structures, name)(hk_frozen)), (linen, flax.core.unfreeze(linen)), (linen_frozen, flax.core.unfreeze(linen_frozen))]
    for original, copy in pairs:
        assert type(copy) is dict and copy is not original
        first = next(iter(copy))
        assert type(copy[first]) is dict and copy[first] is not original[first]
        assert all(a is b for a, b in zip(jax.tree.leaves(copy), jax.tree.leaves(original), strict=True))
    assert_same(pairs[0][1], pairs[1][1])


def test_to_immutable_dict_is_immutable_in_both(migrated: str, trees: tuple[Tree, Tree]) -> None:
    haiku, linen = trees
    assert "flax.core.freeze(params)" in migrated
    hk_frozen, linen_frozen = hk.data_structures.to_immutable_dict(haiku), flax.core.freeze(linen)
    for frozen in (hk_frozen, linen_frozen):
        with pytest.raises((TypeError, ValueError)):  # FlatMap: TypeError; FrozenDict: ValueError
            frozen["extra"] = {}  # type: ignore[index]
    assert_same(hk_frozen, linen_frozen)


@pytest.mark.parametrize(
    ("predicate", "todo"),
    [
        ("lambda m, n, v: v.ndim > 1", False),
        ("lambda module_name, name, value: name == 'w'", True),
        ("lambda m, n, v: m.startswith('mlp')", True),
        ("is_weight", True),  # a def: its body is not read, so the TODO stays
    ],
)
def test_name_reading_callbacks_get_a_todo(predicate: str, todo: bool) -> None:
    source = f"import haiku as hk\n\n\ndef f(params):\n    return hk.data_structures.filter({predicate}, params)\n".encode()
    out = migrate_source(source, "f.py").source.decode()
    assert f"return filter({predicate}, params)" in out
    assert ("now sees Flax names" in out) is todo


def test_builtin_filter_in_the_file_keeps_the_haiku_call() -> None:
    source = b"import haiku as hk\n\n\ndef f(params, xs):\n    return hk.data_structures.filter(lambda m, n, v: True, params), list(filter(None, xs))\n"
    out = migrate_source(source, "f.py").source.decode()
    assert "hk.data_structures.filter(" in out and "would shadow the filter" in out
    assert "\ndef filter(" not in out
