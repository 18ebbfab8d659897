"""``flaxify lint -j N``: the sharded run gives byte-identical output to one process.

The sharded run (lint/parallel.py) parses in N processes, ships module *summaries* (no trees)
to the main process, re-parses there only what the analysis reads, and runs the module rules
where each file's tree lives. These tests compare it with the one-process run on a project with
cross-module chains, on the committed lint fixtures, and on installed library sources.
"""

from __future__ import annotations

import json
import multiprocessing
import pickle
from dataclasses import asdict
from pathlib import Path

import pytest

from flaxify.cli import main
from flaxify.lint import parallel
from flaxify.lint.api import lint_paths, load_sources
from flaxify.lint.engine import LintResult, lint_sources
from flaxify.lint.parallel import lint_sharded, shards
from flaxify.lint.project import index_module
from flaxify.lint.settings import LintSettings

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "lint"

HELPERS = '''\
import logging

def log_metrics(step, value):
    print("step", step, value)
    return summarize(value)

def summarize(value):
    logging.info("value %s", value)
    return float(value)
'''

STEP = '''\
import jax
import jax.numpy as jnp
from pkg.helpers import log_metrics

@jax.jit
def train_step_{i}(x):
    y = jnp.sin(x)
    if y.sum() > 0:
        y = y * 2
    return log_metrics({i}, y)
'''

LOOPS = '''\
import jax

def run(xs, key):
    for x in xs:
        f = jax.jit(lambda v: v + 1)
        f(x)
    a = jax.random.normal(key, (2,))
    b = jax.random.normal(key, (2,))
    return a + b
'''


def _snapshot(result: LintResult) -> tuple[list[dict[str, object]], list[str], int, list[str]]:
    return [asdict(f) for f in result.findings], result.failed, result.files, result.internal


@pytest.fixture()
def no_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    """Makes the sharded run fail loudly instead of quietly redoing the work in one process."""
    def fell_back(*args: object) -> LintResult:
        raise AssertionError("the sharded run fell back to one process")

    monkeypatch.setattr(parallel, "lint_sources", fell_back)


@pytest.fixture()
def chained_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Six jitted steps in six modules, all reaching one helper module two calls deep."""
    monkeypatch.chdir(tmp_path)
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "helpers.py").write_text(HELPERS)
    (package / "loops.py").write_text(LOOPS)
    (package / "broken.py").write_text("def f(:\n    pass\n")
    for i in range(6):
        (package / f"step{i}.py").write_text(STEP.format(i=i))
    return package


@pytest.mark.parametrize("jobs", [2, 3])
@pytest.mark.usefixtures("no_fallback")
def test_sharded_run_equals_one_process_on_cross_module_chains(chained_project: Path, jobs: int) -> None:
    files = load_sources([chained_project])
    # The analysis must read trees that live in a worker: some jitted step is outside the main shard.
    jitted = {i for i, f in enumerate(files) if "@jax.jit" in (f.source or "")}
    assert jitted - set(shards(files, jobs)[0])
    serial = lint_sources(files, LintSettings())
    sharded = lint_sharded(files, LintSettings(), jobs)
    assert _snapshot(sharded) == _snapshot(serial)
    messages = [f.message for f in serial.findings]
    # The chain names the first step in file order (the one-process worklist order), whichever shard it is in.
    assert any(m.endswith("(reached from train_step_0 (pkg/step0.py:10) via log_metrics -> summarize)")
               for m in messages)
    assert {f.code for f in serial.findings} == {"JX001", "JX101", "JX102", "JX201", "JX204", "JX303"}
    assert serial.failed == ["pkg/broken.py"]


@pytest.mark.usefixtures("no_fallback")
def test_sharded_run_equals_one_process_on_the_lint_fixtures(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(FIXTURES)
    files = load_sources([Path(".")])
    serial = lint_sources(files, LintSettings())
    assert any("reached from train_step (flax_train/train.py:27) via log_metrics" in f.message for f in serial.findings)
    for jobs in (2, 4):
        assert _snapshot(lint_sharded(files, LintSettings(), jobs)) == _snapshot(serial)


def _json_lint(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["lint", "--format", "json", *args])
    return code, capsys.readouterr().out


@pytest.mark.usefixtures("no_fallback")
def test_cli_json_is_identical_for_j1_and_j2_on_real_sources(capsys: pytest.CaptureFixture[str],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import optax

    # A sample below the size where -j starts workers: lower the bar so that -j 2 really shards it.
    monkeypatch.setattr(parallel, "MIN_PARALLEL_CHARS", 0)
    roots = [str(Path(optax.__file__).parent), str(FIXTURES)]
    serial_code, serial = _json_lint(["--no-cache", *roots], capsys)
    parallel_code, parallel_out = _json_lint(["--no-cache", "-j", "2", *roots], capsys)
    assert (parallel_code, parallel_out) == (serial_code, serial)
    codes = {item["code"] for item in json.loads(serial)}
    assert "JX202" in codes and "JX101" in codes  # optax's dice_loss and the fixtures' findings


def test_cache_is_shared_between_job_counts(chained_project: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    settings = LintSettings()
    cold = lint_paths([chained_project], settings, jobs=2, cache_dir=cache)
    stored = sorted(cache.rglob("*.json"))
    assert len(stored) == 1
    warm = lint_paths([chained_project], settings, jobs=1, cache_dir=cache)
    assert _snapshot(warm) == _snapshot(cold)
    assert sorted(cache.rglob("*.json")) == stored  # a hit: no second entry
    (chained_project / "helpers.py").write_text(HELPERS.replace('print("step", step, value)\n    ', ""))
    edited = lint_paths([chained_project], settings, jobs=2, cache_dir=cache)
    assert [f.code for f in edited.findings].count("JX101") == 0
    assert len(list(cache.rglob("*.json"))) == 2


def test_a_summary_reparses_into_the_same_objects(tmp_path: Path) -> None:
    path = tmp_path / "model.py"
    source = ("import flax.linen as nn\nimport jax\n\nclass Net(nn.Module):\n    @nn.compact\n"
              "    def __call__(self, x):\n        def inner(y):\n            return (y, y)\n        return inner(x)\n"
              "\nstep = jax.jit(lambda v: v + 1)\n")
    import ast

    module = index_module(path, "model.py", source, ast.parse(source))
    summary = pickle.loads(pickle.dumps(module))
    assert not summary.materialized and "tree" not in summary.__dict__
    summary.source = source
    cls = summary.classes["Net"]
    call = cls.methods["__call__"]
    # Names, scopes and base classes are there without a tree ...
    assert (cls.name, cls.bases, call.positional, call.is_method) == ("Net", ("flax.linen.Module",), ["self", "x"], True)
    assert call.nested["inner"].tuple_width == 2
    assert not summary.materialized
    # ... and the first read of a tree re-parses the file into the very same objects.
    node = call.node
    assert summary.materialized and isinstance(node, ast.FunctionDef) and node.name == "__call__"
    assert summary.by_node[id(node)] is call
    assert [f.qualname for f in summary.all_functions] == [f.qualname for f in module.all_functions]
    assert all(summary.by_node[id(f.node)] is f for f in summary.all_functions)
    assert cls.node.name == "Net" and len(summary.module_calls) == 1


@pytest.mark.skipif(multiprocessing.get_start_method() != "fork", reason="the failing worker is patched in by fork")
def test_a_failing_worker_falls_back_to_one_process(chained_project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object) -> None:
        raise ValueError("worker bug")

    monkeypatch.setattr(parallel, "_work", broken)  # the forked worker runs this instead of its shard
    files = load_sources([chained_project])
    assert _snapshot(lint_sharded(files, LintSettings(), 2)) == _snapshot(lint_sources(files, LintSettings()))


def test_shards_cover_every_file_once(chained_project: Path) -> None:
    files = load_sources([chained_project])
    for jobs in (2, 3, 5):
        parts = shards(files, jobs)
        assert len(parts) == jobs
        assert sorted(i for part in parts for i in part) == list(range(len(files)))
