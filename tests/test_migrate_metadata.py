"""The migrate passes' shortcuts around LibCST's metadata answer exactly what LibCST would.

``FlaxifyCommand`` (migrate/base.py) resolves ScopeProvider lazily instead of
QualifiedNameProvider, answers ``haiku_name`` without the scope analysis when no
Haiku import binds a name's leftmost part, skips the deep copy of a tree whose
node objects are all distinct, and walks only statements to build the import
table. Each test compares one shortcut with LibCST's own answer on real code:
the installed Haiku sources plus edge cases written to defeat a name-based guess.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import haiku as hk
import libcst as cst
import pytest
from libcst.codemod import CodemodContext
from libcst.metadata import MetadataWrapper, QualifiedNameProvider

from flaxify.migrate.base import STATE_KEY, FlaxifyCommand, MigrationState, import_table, shares_nodes

HAIKU_SRC = Path(hk.__file__).resolve().parent / "_src"

EDGE_CASES = {
    "keyword and attribute named like the alias": """
        import haiku as hk
        from haiku import Linear as L
        import haiku.nets
        def f(x, hk=None):
            y = x.hk + L(2)(x)
            return g(hk=1, L=2), haiku.nets.MLP([2]), hk.Linear(3)(x).w
        """,
    "a function named haiku names its locals haiku.<locals>": """
        import haiku as hk
        def haiku():
            Linear = 1
            return Linear + hk.Linear
        """,
    "a class named haiku names its attributes haiku.X": """
        class haiku:
            Linear = 1
            z = Linear
        """,
    "haiku imported from another package, star and relative imports": """
        from other import haiku
        from haiku import *
        from . import hk
        x = haiku.Linear, Linear, hk.Linear
        """,
    "alias rebound and shadowed": """
        import haiku as hk
        import jax as hk2
        hk2 = hk
        def f(hk):
            return hk.Linear, hk2.Linear
        class C:
            hk = 3
            w = hk
        """,
}


def _sources() -> list[tuple[str, str]]:
    edge = [(name, textwrap.dedent(code)) for name, code in EDGE_CASES.items()]
    paths = (HAIKU_SRC / "basic.py", HAIKU_SRC / "stateful_test.py", HAIKU_SRC / "nets" / "resnet.py")
    real = [(path.name, path.read_text()) for path in paths]
    return edge + real


class _Recorder(FlaxifyCommand):
    """Records haiku_name for every Name and Attribute, next to LibCST's qualified names."""

    def __init__(self, context: CodemodContext, reference: dict[cst.CSTNode, set[str]]) -> None:
        super().__init__(context)
        self.reference = reference
        self.mismatches: list[str] = []
        self.seen = 0

    def _check(self, node: cst.CSTNode) -> None:
        assert node in self.reference, "the pass must visit the very tree LibCST analysed (no copy)"
        expected = next((q for q in sorted(self.reference[node]) if q == "haiku" or q.startswith("haiku.")), None)
        got = self.haiku_name(node)
        self.seen += 1
        if (got is None) != (expected is None) or (got is not None and got not in self.reference[node]):
            self.mismatches.append(f"{cst.Module([]).code_for_node(node)}: {got} vs {sorted(self.reference[node])}")

    def visit_Name(self, node: cst.Name) -> None:
        self._check(node)

    def visit_Attribute(self, node: cst.Attribute) -> None:
        self._check(node)


@pytest.mark.parametrize(("name", "source"), _sources(), ids=[name for name, _ in _sources()])
def test_haiku_name_matches_libcst_qualified_names(name: str, source: str) -> None:
    tree = cst.parse_module(source)
    qualified = MetadataWrapper(tree, unsafe_skip_copy=True).resolve(QualifiedNameProvider)
    # Unevaluated entries are LibCST LazyValues: calling one gives the names.
    reference = {node: {q.name for q in (names() if callable(names) else names)} for node, names in qualified.items()}
    context = CodemodContext(filename=name)
    context.scratch[STATE_KEY] = MigrationState(nn="nn", jnp="jnp")
    recorder = _Recorder(context, reference)
    recorder.transform_module(tree)
    assert recorder.seen > 0
    assert recorder.mismatches == []


def _import_table_over_every_node(tree: cst.Module) -> dict[str, str]:
    """The former import_table: the same table, built by a walk over every child."""
    table: dict[str, str] = {}
    stack: list[cst.CSTNode] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, (cst.Import, cst.ImportFrom)):
            table.update(import_table(cst.Module(body=[cst.SimpleStatementLine(body=[node])])))
        else:
            stack.extend(node.children)
    return table


def test_import_table_walks_statements_in_the_same_order() -> None:
    """A name imported in several blocks keeps the winner a full walk gives."""
    code = textwrap.dedent(
        """
        import a as x
        try:
            import b as x
        except ImportError:
            import c as x
        else:
            import d as x
        finally:
            import e as x
        def f():
            import g as y
        import h as y
        if t:
            import i as z
        elif u:
            import j as z
        else:
            import k as z
        with m: import n as w
        class C:
            import p as v
        lambda: 0; import r as v
        from . import rel
        from o import *
        """
    )
    for tree in (cst.parse_module(code), cst.parse_module((HAIKU_SRC / "stateful_test.py").read_text())):
        expected = _import_table_over_every_node(tree)
        assert list(import_table(tree).items()) == list(expected.items())


def test_shared_node_objects_are_detected() -> None:
    tree = cst.parse_module("x = f(a)\n")
    assert not shares_nodes(tree)
    name = cst.Name("a")
    twice = [cst.SimpleStatementLine([cst.Expr(name)]), cst.SimpleStatementLine([cst.Expr(name)])]
    shared = tree.with_changes(body=[*tree.body, *twice])
    assert shares_nodes(shared)


class _Probe(FlaxifyCommand):
    """Resolves ``hk.Linear`` and remembers which analysis answered."""

    found: str | None = None
    wrapper: object = None

    def visit_Attribute(self, node: cst.Attribute) -> None:
        self.found = self.haiku_name(node)
        self.wrapper = self._wrapper


class _Rename(FlaxifyCommand):
    def leave_Name(self, original_node: cst.Name, updated_node: cst.Name) -> cst.Name:
        return updated_node.with_changes(value="y") if original_node.value == "x" else updated_node


def test_an_unchanged_tree_keeps_its_analysis_for_the_next_pass() -> None:
    context = CodemodContext(filename="probe.py")
    context.scratch[STATE_KEY] = MigrationState(nn="nn", jnp="jnp")
    tree = cst.parse_module("import haiku as hk\nx = hk.Linear\n")
    first, second = _Probe(context), _Probe(context)
    assert first.transform_module(tree) is tree  # nothing changed: the analysed tree itself
    assert second.transform_module(tree) is tree
    assert first.found == second.found == "haiku.Linear"
    assert second.wrapper is first.wrapper  # one scope analysis for both passes
    renamed = _Rename(context).transform_module(tree)
    assert renamed.code == "import haiku as hk\ny = hk.Linear\n"
    third = _Probe(context)
    third.transform_module(renamed)
    assert third.found == "haiku.Linear" and third.wrapper is not first.wrapper
