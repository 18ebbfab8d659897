"""Pathological inputs: every file is processed or reported cleanly, never a traceback or an internal error.

Each case is a whole file; the CLI runs on it next to an ordinary Haiku file, which
must still be migrated (one bad file never stops the others). Cases marked
``xfail(strict=True)`` are bugs reported to the owning module's author: they flip
to passing, and so fail here, the day the bug is fixed.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from flaxify.cli import cli
from flaxify.migrate import migrate_source

GOOD = b"import haiku as hk\n\n\nclass Mlp(hk.Module):\n    def __call__(self, x):\n        return hk.Linear(4)(x)\n"

CASES: dict[str, bytes] = {
    "empty": b"",
    "only-bom": b"\xef\xbb\xbf",
    "no-final-newline": b"import haiku as hk\nx = hk.Linear(2)",
    "lone-cr-line-endings": b"import haiku as hk\rclass M(hk.Module):\r    def __call__(self, x):\r        return x\r",
    "form-feed": b"import haiku as hk\n\x0c\nx = 1\n",
    "nul-byte": b"import haiku as hk\nx = 1\x00\n",
    "unknown-coding-cookie": b"# coding: no-such-codec\nimport haiku as hk\n",
    "latin-1-cookie": b"# -*- coding: latin-1 -*-\nimport haiku as hk\n# caf\xe9\nx = 1\n",
    "invalid-utf8": b"import haiku as hk\nx = '\xff\xfe'\n",
    "utf-16": "import haiku as hk\n".encode("utf-16"),
    "match-statement": b"import haiku as hk\nmatch x:\n    case [1, *rest]:\n        pass\n",
    "pep-695-generics": b"import haiku as hk\ntype X = int\ndef f[T](x: T) -> T:\n    return x\n",
    "nested-fstrings": b"import haiku as hk\nx = f\"{'a' + f'{1:>{2}}'}\"\n",
    "star-import": b"from haiku import *\nx = Linear(3)\n",
    "haiku-name-rebound": b"import haiku as hk\nhk = 3\nx = hk + 1\n",
    "async-haiku": b"import haiku as hk\nasync def f(x):\n    async with a as b:\n        return await hk.Linear(2)(x)\n",
    "haiku-only-in-strings": b"# haiku about autumn\nname = 'haiku'\ndef haiku_poem():\n    return \"haiku\"\n",
    "deep-parentheses": b"import haiku as hk\nx = " + b"(" * 150 + b"1" + b")" * 150 + b"\n",
    "deep-lists": b"import haiku as hk\nx = " + b"[" * 1000 + b"]" * 1000 + b"\n",
    "long-sum": b"import haiku as hk\nx = " + b" + ".join([b"a"] * 3000) + b"\n",
    "python-2": b"import haiku as hk\nprint 'hello'\n",
    "unterminated-string": b"import haiku as hk\nx = '''\n",
    "bad-indentation": b"import haiku as hk\ndef f():\nreturn 1\n",
}


def invoke(*args: str | Path) -> Result:
    """``flaxify ARGS`` in-process."""
    return CliRunner().invoke(cli, [*map(str, args)], catch_exceptions=False)


def compiles(source: bytes) -> bool:
    """Whether this Python compiles ``source`` (compiling never runs it)."""
    try:
        compile(source, "<case>", "exec")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


@pytest.mark.parametrize("name", sorted(CASES))
def test_migrate_processes_or_reports_each_case_and_continues(tmp_path: Path, name: str) -> None:
    odd, good = tmp_path / "odd.py", tmp_path / "good.py"
    odd.write_bytes(CASES[name])
    good.write_bytes(GOOD)
    result = invoke("migrate", tmp_path)
    assert "internal error" not in result.stderr, result.stderr
    assert result.exit_code in (0, 1), result.stderr
    assert good.read_bytes() == migrate_source(GOOD, str(good)).source != GOOD
    if f"{odd}:" in result.stderr and "error:" in result.stderr:
        assert odd.read_bytes() == CASES[name]  # reported files are left as they were
        return
    if b"import haiku" not in CASES[name] and b"from haiku" not in CASES[name]:
        assert odd.read_bytes() == CASES[name]
    if compiles(CASES[name]):  # (3.11 rejects PEP 695, NUL bytes...: then only "untouched" is asked)
        assert compiles(odd.read_bytes()), odd.read_bytes()
    assert invoke("migrate", "--check", odd).exit_code == 0, "a second run would change it"


@pytest.mark.parametrize("name", sorted(CASES))
def test_lint_reports_each_case_and_still_lints_the_rest(tmp_path: Path, name: str) -> None:
    (tmp_path / "odd.py").write_bytes(CASES[name])
    (tmp_path / "traced.py").write_bytes(b"import jax\n\n\n@jax.jit\ndef f(x):\n    print(x)\n    return x\n")
    result = CliRunner().invoke(cli, ["lint", "--no-cache", str(tmp_path)])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == 1, result.output
    assert "traced.py:6:5: JX101" in result.stdout
    assert "internal error" not in result.output


def test_lint_reads_a_pep_263_latin_1_file_like_python_does(tmp_path: Path) -> None:
    path = tmp_path / "latin.py"
    path.write_bytes(b"# -*- coding: latin-1 -*-\nimport jax\n\n\n@jax.jit\ndef f(x):\n    print('caf\xe9')\n    return x\n")
    result = CliRunner().invoke(cli, ["lint", "--no-cache", str(path)])
    assert "JX001" not in result.stdout


def test_project_index_skips_a_file_ast_cannot_build() -> None:
    from flaxify.migrate.project import index_sources

    assert index_sources([(Path("odd.py"), CASES["long-sum"])]).transformed == {}


def test_a_file_without_haiku_usage_is_byte_identical_even_with_a_free_jax_name() -> None:
    source = b"# haiku here\n@jax.jit\ndef f(x):\n    return x\n"
    assert migrate_source(source, "f.py").source == source


def test_a_local_name_haiku_is_not_taken_for_the_haiku_module() -> None:
    source = b"haiku = 'five seven five'\n\n\ndef haiku_len():\n    return len(haiku)\n"
    assert migrate_source(source, "poems.py").source == source


RNN_EXAMPLE = Path(__import__("jax").__file__).resolve().parent.parent / "examples" / "rnn"


@pytest.mark.skipif(not (RNN_EXAMPLE / "train.py").exists(), reason="dm-haiku's examples are not installed")
def test_haiku_example_rnn_is_a_fixed_point(tmp_path: Path) -> None:
    for name in ("__init__.py", "dataset.py", "train.py"):
        (tmp_path / name).write_bytes((RNN_EXAMPLE / name).read_bytes())
    assert invoke("migrate", tmp_path).exit_code == 0
    assert invoke("migrate", "--check", tmp_path).exit_code == 0, "a second run changes the migrated files"


STEM_A = b"""import haiku as hk


def forward(x):
    return hk.dropout(hk.next_rng_key(), 0.5, hk.Linear(2)(x))


net = hk.transform(forward)
"""
STEM_B = b"""import haiku as hk


def forward(x):
    return hk.Linear(3)(x)


net = hk.without_apply_rng(hk.transform(forward))
"""
STEM_TRAIN = b"""from model import net


def loss(params, x):
    return net.apply(params, x).sum()
"""


def test_call_sites_follow_their_own_package_model_in_a_monorepo(tmp_path: Path) -> None:
    for folder, files in {"a": {"model.py": STEM_A}, "b": {"model.py": STEM_B, "train.py": STEM_TRAIN}}.items():
        (tmp_path / folder).mkdir()
        for name, data in files.items():
            (tmp_path / folder / name).write_bytes(data)
    alone = tmp_path / "alone"
    alone.mkdir()
    (alone / "model.py").write_bytes(STEM_B)
    (alone / "train.py").write_bytes(STEM_TRAIN)
    assert invoke("migrate", alone).exit_code == 0
    assert invoke("migrate", tmp_path / "b", tmp_path / "a").exit_code == 0
    assert (tmp_path / "b" / "train.py").read_bytes() == (alone / "train.py").read_bytes()
