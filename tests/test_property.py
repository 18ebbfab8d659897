"""Property-based tests (hypothesis) on generated Python programs.

A small grammar builds valid programs: imports, assignments, functions, classes,
loops, comprehensions, lambdas, f-strings, decorators, comments, unicode names and
text, with LF or CRLF line endings, spaces or tab indentation and an optional BOM.

- Programs without Haiku, even ones that say "haiku" in names, strings and comments
  (so the engine's substring shortcut does not apply), come out of migrate byte-identical.
- Programs that use Haiku never crash migrate; the result compiles, is a fixed point,
  and migrating the CRLF form gives the CRLF form of the migration.
- lint never crashes and never records an internal error on any of them.

Examples are bounded (``max_examples``, no deadline) so that CI stays fast.
"""

from __future__ import annotations

import keyword
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flaxify.lint.engine import SourceFile, lint_sources
from flaxify.lint.settings import LintSettings
from flaxify.migrate import migrate_source

BOUNDED = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
HAIKU_BOUNDED = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])

NAME_PARTS = ["x", "y", "params", "haiku", "poem", "λ", "café", "模型", "net", "hk_like", "apply", "init"]
TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Zl", "Zp")), max_size=12)


@st.composite
def names(draw: st.DrawFn) -> str:
    """An identifier, often with "haiku" or non-ASCII letters in it."""
    parts = draw(st.lists(st.sampled_from(NAME_PARTS), min_size=1, max_size=3))
    name = "_".join(parts)
    return f"{name}_" if keyword.iskeyword(name) else name


def string_literal(text: str) -> str:
    """``text`` as a Python string literal (repr escapes what needs escaping)."""
    return repr(text)


atoms = st.one_of(
    names(),
    st.integers(-(10**6), 10**6).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    TEXT.map(string_literal),
    st.just("'haiku'"),
    st.just("None"),
)


def compound(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """Expressions built from smaller ones."""
    return st.one_of(
        st.tuples(children, st.sampled_from(["+", "-", "*", "@", "//", "**", "and", "or", "<", "=="]), children).map(
            lambda t: f"({t[0]} {t[1]} {t[2]})"
        ),
        st.tuples(names(), st.lists(children, max_size=3)).map(lambda t: f"{t[0]}({', '.join(t[1])})"),
        st.tuples(children, names()).map(lambda t: f"({t[0]}).{t[1]}"),
        st.lists(children, max_size=3).map(lambda items: f"[{', '.join(items)}]"),
        st.tuples(children, children).map(lambda t: f"{{{t[0]}: {t[1]}}}"),
        st.tuples(names(), children).map(lambda t: f"(lambda {t[0]}: {t[1]})"),
        st.tuples(children, names(), children).map(lambda t: f"[{t[0]} for {t[1]} in {t[2]}]"),
        names().map(lambda name: f"f'{{{name}!r:>4}} haiku'"),
    )


expressions = st.recursive(atoms, compound, max_leaves=8)


@st.composite
def blocks(draw: st.DrawFn, depth: int = 0) -> list[str]:
    """A list of statements; ``INDENT`` marks one indentation level, laid out later."""
    lines: list[str] = []
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["assign", "expr", "comment", "import", "def", "class", "for", "if"]))
        if depth >= 2 and kind in ("def", "class", "for", "if"):
            kind = "assign"
        if kind == "assign":
            lines.append(f"{draw(names())} = {draw(expressions)}")
        elif kind == "expr":
            lines.append(draw(expressions))
        elif kind == "comment":
            lines.append(f"# {draw(TEXT)} haiku".replace("\r", " ").replace("\n", " "))
        elif kind == "import":
            module = draw(st.sampled_from(["os", "jax", "jax.numpy as jnp", "numpy as np", "functools", "math"]))
            lines.append(f"import {module}")
        else:
            header = {
                "def": f"def {draw(names())}({draw(names())}, *args, key=None):",
                "class": f"class {draw(names()).title()}:",
                "for": f"for {draw(names())} in {draw(expressions)}:",
                "if": f"if {draw(expressions)}:",
            }[kind]
            if kind in ("def", "class") and draw(st.booleans()):
                lines.append(f"@{draw(st.sampled_from(['functools.cache', 'jax.jit', 'staticmethod']))}")
            lines.append(header)
            lines.extend(f"INDENT{line}" for line in [*draw(blocks(depth + 1)), "pass"])
    return lines


@st.composite
def layouts(draw: st.DrawFn) -> tuple[str, str, bytes]:
    """(newline, indent unit, prefix): how the same program is laid out in bytes."""
    return draw(st.sampled_from(["\n", "\r\n"])), draw(st.sampled_from(["    ", "  ", "\t"])), draw(
        st.sampled_from([b"", b"\xef\xbb\xbf"])
    )


def render(lines: list[str], layout: tuple[str, str, bytes]) -> bytes:
    """The program as file bytes in ``layout``."""
    newline, indent, prefix = layout
    text = newline.join(line.replace("INDENT", indent) for line in lines) + newline
    return prefix + text.encode("utf-8")


@st.composite
def plain_programs(draw: st.DrawFn) -> bytes:
    """A program that never imports Haiku, though it may say "haiku" anywhere else."""
    # Decorators may name `jax` or `functools` without importing them: still valid Python.
    lines = ["# haiku appears here, so the engine cannot take its substring shortcut", *draw(blocks())]
    return render(lines, draw(layouts()))


HAIKU_SNIPPETS = [
    ["class {C}(hk.Module):", "INDENTdef __call__(self, x):", "INDENTINDENTreturn hk.Linear({n})(x)"],
    ["class {C}(hk.Module):", "INDENTdef __init__(self, size, name=None):", "INDENTINDENTsuper().__init__(name=name)",
     "INDENTINDENTself.size = size", "INDENTdef __call__(self, x):",
     "INDENTINDENTw = hk.get_parameter('w', [x.shape[-1], self.size], init=jnp.zeros)", "INDENTINDENTreturn x @ w"],
    ["def {f}(x):", "INDENTx = hk.Conv2D({n}, kernel_shape=3)(x)", "INDENTreturn hk.max_pool(x, 2, 2, 'SAME')",
     "{f}_net = hk.transform({f})"],
    ["def {f}(x, is_training):", "INDENTx = hk.nets.MLP([{n}, {n}])(x)",
     "INDENTreturn hk.dropout(hk.next_rng_key(), 0.5, x) if is_training else x",
     "{f}_net = hk.transform({f})"],
    ["def {f}(x):", "INDENTreturn hk.Sequential([hk.Linear({n}), jax.nn.relu, hk.LayerNorm(-1, True, True)])(x)",
     "{f}_net = hk.without_apply_rng(hk.transform({f}))", "{f}_params = {f}_net.init(jax.random.PRNGKey(0), jnp.ones([1, 3]))",
     "{f}_out = {f}_net.apply({f}_params, jnp.ones([1, 3]))"],
]


@st.composite
def haiku_programs(draw: st.DrawFn) -> list[str]:
    """Haiku snippets with random names and sizes, between random plain statements."""
    lines = ["import haiku as hk", "import jax", "import jax.numpy as jnp"]
    for index in range(draw(st.integers(1, 2))):
        snippet = draw(st.sampled_from(HAIKU_SNIPPETS))
        fill = {"C": f"Block{index}{draw(st.sampled_from(['', 'Λ', 'Ext']))}", "f": f"forward_{index}",
                "n": str(draw(st.integers(1, 64)))}
        lines.extend(line.format(**fill) for line in snippet)
        lines.extend(draw(blocks(depth=2)))  # simple statements only
    return lines


@BOUNDED
@given(plain_programs())
def test_migrate_leaves_code_without_haiku_byte_identical(source: bytes) -> None:
    compile(source, "<generated>", "exec")  # the generator makes valid Python
    assert migrate_source(source, "generated.py").source == source


@HAIKU_BOUNDED
@given(haiku_programs(), layouts())
def test_migrate_of_haiku_code_compiles_is_a_fixed_point_and_keeps_the_layout(
    lines: list[str], layout: tuple[str, str, bytes]
) -> None:
    source = render(lines, layout)
    migrated = migrate_source(source, "generated.py").source
    compile(migrated, "<migrated>", "exec")
    assert migrate_source(migrated, "generated.py").source == migrated
    newline, indent, prefix = layout
    if newline == "\r\n":
        assert migrated == prefix + migrate_source(render(lines, ("\n", indent, b"")), "generated.py").source.replace(
            b"\n", b"\r\n"
        )


@BOUNDED
@given(st.lists(st.one_of(plain_programs(), haiku_programs().map(lambda ls: render(ls, ("\n", "    ", b"")))),
                min_size=1, max_size=3))
def test_lint_never_crashes(sources: list[bytes]) -> None:
    files = [SourceFile(Path(f"m{i}.py"), f"m{i}.py", src.decode("utf-8-sig")) for i, src in enumerate(sources)]
    result = lint_sources(files, LintSettings())
    assert result.files == len(files)
    assert getattr(result, "internal", []) == []
    assert not result.failed  # every generated program is valid Python
