"""``flaxify migrate`` end to end on real temporary trees.

These tests pin the driver's contract (what is written where, exit codes, reports,
byte-identity, atomicity). What a migrated file should contain is the rewrite
engine's business: expected bytes always come from calling
:func:`flaxify.migrate.migrate_source` directly, never from hard-coded text.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from flaxify.cli import cli, main
from flaxify.migrate import migrate_source
from flaxify.migrate.project import index_sources

HAIKU = b"""import haiku as hk


class Mlp(hk.Module):
    def __call__(self, x):
        return hk.Linear(4)(x)
"""
PLAIN = b"import jax.numpy as jnp\n\n\ndef double(x):\n    return 2 * jnp.asarray(x)\n"
BROKEN = b"import haiku as hk\n\nx = (\n"
MODEL = b"""import haiku as hk


def forward(x):
    return hk.Linear(2)(x)


net = hk.without_apply_rng(hk.transform(forward))
"""
TRAIN = b"""from model import net


def loss(params, x):
    return net.apply(params, x).sum()
"""
SUMMARY = re.compile(
    r"(\d+) files? scanned, (\d+) (?:migrated|would be migrated), (\d+) unchanged, (\d+) TODOs?, (\d+) failed"
)


def invoke(*args: str | Path) -> Result:
    """Runs ``flaxify migrate ARGS`` in-process, stdout and stderr kept apart."""
    return CliRunner().invoke(cli, ["migrate", *map(str, args)], catch_exceptions=False)


def summary(result: Result) -> tuple[int, ...]:
    """(scanned, migrated, unchanged, todos, failed) from the summary line on stderr."""
    found = SUMMARY.search(result.stderr)
    assert found, result.stderr
    return tuple(int(number) for number in found.groups())


def expected(source: bytes, path: Path) -> bytes:
    """What the engine makes of ``source``; the test needs it to be a real change."""
    migrated = migrate_source(source, str(path))
    assert migrated.changed, "the Haiku fixture must be something the engine rewrites"
    return migrated.source


def make_tree(root: Path) -> dict[str, Path]:
    """A small project: one Haiku module, one plain module in a sub-package."""
    (root / "pkg").mkdir(parents=True)
    files = {"model": root / "model.py", "plain": root / "pkg" / "plain.py"}
    files["model"].write_bytes(HAIKU)
    files["plain"].write_bytes(PLAIN)
    return files


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` with its bytes."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def age(path: Path) -> int:
    """Sets ``path``'s mtime an hour back and returns it, so any rewrite would show."""
    old = path.stat().st_mtime_ns - 3600 * 10**9
    os.utime(path, ns=(old, old))
    return old


def test_in_place_rewrites_haiku_and_leaves_other_files_untouched(tmp_path: Path) -> None:
    files = make_tree(tmp_path)
    plain_mtime = age(files["plain"])
    result = invoke(tmp_path)
    assert result.exit_code == 0, result.stderr
    assert files["model"].read_bytes() == expected(HAIKU, files["model"])
    assert files["plain"].read_bytes() == PLAIN
    assert files["plain"].stat().st_mtime_ns == plain_mtime
    assert summary(result)[:3] == (2, 1, 1)
    assert summary(result)[4] == 0
    assert result.stdout == ""


def test_a_second_run_changes_nothing(tmp_path: Path) -> None:
    make_tree(tmp_path)
    assert invoke(tmp_path).exit_code == 0
    after_first = snapshot(tmp_path)
    again = invoke("--check", tmp_path)
    assert again.exit_code == 0, again.stderr
    assert summary(again)[1] == 0
    assert snapshot(tmp_path) == after_first


def test_diff_prints_an_applicable_patch_and_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = make_tree(tmp_path)
    before = snapshot(tmp_path)
    monkeypatch.chdir(tmp_path)  # relative paths, as users type them, so the patch applies with -p1
    result = invoke("--diff", ".")
    assert result.exit_code == 0, result.stderr
    assert snapshot(tmp_path) == before
    assert result.stdout.startswith("--- a/model.py\n+++ b/model.py\n")
    assert "plain.py" not in result.stdout
    subprocess.run(["patch", "-s", "-p1"], input=result.stdout.encode(), check=True)
    assert files["model"].read_bytes() == expected(HAIKU, Path("model.py"))
    assert files["plain"].read_bytes() == PLAIN


def test_check_exits_1_when_a_file_would_change_and_writes_nothing(tmp_path: Path) -> None:
    make_tree(tmp_path)
    before = snapshot(tmp_path)
    result = invoke("--check", tmp_path)
    assert result.exit_code == 1
    assert snapshot(tmp_path) == before
    assert summary(result)[1] == 1
    assert result.stdout == ""


def test_check_exits_0_when_nothing_would_change(tmp_path: Path) -> None:
    (tmp_path / "plain.py").write_bytes(PLAIN)
    result = invoke("--check", tmp_path)
    assert result.exit_code == 0, result.stderr
    assert summary(result) == (1, 0, 1, 0, 0)


def test_output_dir_mirrors_the_tree_and_leaves_originals(tmp_path: Path) -> None:
    files = make_tree(tmp_path / "src")
    before = snapshot(tmp_path / "src")
    out = tmp_path / "out"
    result = invoke(tmp_path / "src", "-o", out)
    assert result.exit_code == 0, result.stderr
    assert snapshot(tmp_path / "src") == before
    assert (out / "model.py").read_bytes() == expected(HAIKU, files["model"])
    assert (out / "pkg" / "plain.py").read_bytes() == PLAIN


def test_output_dir_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    make_tree(tmp_path / "src")
    out = tmp_path / "out"
    (out / "pkg").mkdir(parents=True)
    (out / "pkg" / "plain.py").write_bytes(b"mine\n")
    refused = invoke(tmp_path / "src", "-o", out)
    assert refused.exit_code == 2
    assert str(out / "pkg" / "plain.py") in refused.stderr
    assert (out / "pkg" / "plain.py").read_bytes() == b"mine\n"
    assert not (out / "model.py").exists()  # refused before writing anything
    forced = invoke(tmp_path / "src", "-o", out, "--force")
    assert forced.exit_code == 0, forced.stderr
    assert (out / "pkg" / "plain.py").read_bytes() == PLAIN


def test_output_dir_inside_a_path_is_refused(tmp_path: Path) -> None:
    make_tree(tmp_path)
    before = snapshot(tmp_path)
    result = invoke(tmp_path, "-o", tmp_path / "migrated")
    assert result.exit_code == 2
    assert "inside" in result.stderr
    assert snapshot(tmp_path) == before


def test_report_lists_files_todos_and_counts(tmp_path: Path) -> None:
    files = make_tree(tmp_path / "src")
    (tmp_path / "src" / "broken.py").write_bytes(BROKEN)
    report = tmp_path / "report.json"
    result = invoke(tmp_path / "src", "--report", report)
    assert result.exit_code == 1
    data = json.loads(report.read_text())
    statuses = {Path(entry["path"]).name: entry["status"] for entry in data["files"]}
    assert statuses == {"model.py": "changed", "plain.py": "unchanged", "broken.py": "failed"}
    broken = next(entry for entry in data["files"] if entry["status"] == "failed")
    assert broken["error"] and broken["line"] == 3
    todos = migrate_source(HAIKU, str(files["model"])).todos
    assert [(t["line"], t["construct"], t["reason"]) for t in data["todos"]] == [
        (t.line, t.construct, t.reason) for t in todos
    ]
    assert data["summary"] == {"scanned": 3, "migrated": 1, "unchanged": 1, "todos": len(todos), "failed": 1}


def test_report_into_a_missing_folder_is_refused_before_any_write(tmp_path: Path) -> None:
    (tmp_path / "model.py").write_bytes(HAIKU)
    result = invoke(tmp_path, "--report", tmp_path / "nowhere" / "report.json")
    assert result.exit_code == 2
    assert "nowhere" in result.stderr
    assert (tmp_path / "model.py").read_bytes() == HAIKU


def test_exclude_globs_from_the_command_line_and_pyproject(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_tree(tmp_path)
    for name in ("gen_model.py", "legacy.py"):
        (tmp_path / "pkg" / name).write_bytes(HAIKU)
    (tmp_path / "pyproject.toml").write_text('[tool.flaxify.migrate]\nexclude = ["gen_*"]\n')
    monkeypatch.chdir(tmp_path)
    result = invoke(".", "--exclude", "pkg/legacy.py")
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "pkg" / "gen_model.py").read_bytes() == HAIKU
    assert (tmp_path / "pkg" / "legacy.py").read_bytes() == HAIKU
    assert (tmp_path / "model.py").read_bytes() != HAIKU
    assert summary(result)[0] == 2


def test_skipped_folders_and_outside_symlinks_are_left_alone(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    make_tree(tree)
    for folder in (".venv", "build", "__pycache__", ".hidden", "node_modules"):
        (tree / folder).mkdir()
        (tree / folder / "m.py").write_bytes(HAIKU)
    outside = tmp_path / "outside.py"
    outside.write_bytes(HAIKU)
    (tree / "link.py").symlink_to(outside)
    (tree / "linkdir").symlink_to(tmp_path, target_is_directory=True)
    result = invoke(tree)
    assert result.exit_code == 0, result.stderr
    assert summary(result)[0] == 2
    assert outside.read_bytes() == HAIKU
    assert all((tree / f / "m.py").read_bytes() == HAIKU for f in (".venv", "build", "__pycache__", ".hidden"))


def test_a_named_file_is_migrated_whatever_its_extension(tmp_path: Path) -> None:
    script = tmp_path / "train"
    script.write_bytes(HAIKU)
    result = invoke(script)
    assert result.exit_code == 0, result.stderr
    assert script.read_bytes() == expected(HAIKU, script)


def test_parallel_runs_give_the_same_files_and_output_as_serial(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outputs = []
    for jobs in ("1", "2"):
        root = tmp_path / f"j{jobs}"
        for index in range(3):
            (root / f"m{index}").mkdir(parents=True)
            (root / f"m{index}" / "plain.py").write_bytes(PLAIN)
            if index < 2:  # the engine takes a while per Haiku file; two show the ordering
                (root / f"m{index}" / "model.py").write_bytes(HAIKU)
        (root / "broken.py").write_bytes(BROKEN)
        monkeypatch.chdir(root)  # identical relative paths in both runs' messages
        done = invoke("-j", jobs, "--report", tmp_path / f"report{jobs}.json", ".")
        report = json.loads((tmp_path / f"report{jobs}.json").read_text())
        outputs.append((done.exit_code, done.stderr, report, snapshot(root)))
    assert outputs[0] == outputs[1]
    assert outputs[0][0] == 1  # the broken file failed in both
    assert [entry["path"] for entry in outputs[0][2]["files"]] == sorted(snapshot(tmp_path / "j1"))


def test_call_sites_follow_models_across_files_whichever_worker_runs_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sources = {"model.py": MODEL, "train.py": TRAIN}
    project = index_sources((Path(name), data) for name, data in sources.items())
    # train.py has no Haiku of its own: only the index can tell it that `net` is a model.
    assert migrate_source(TRAIN, "train.py", project).changed
    expected = {name: migrate_source(data, name, project).source for name, data in sources.items()}
    for jobs in ("1", "3"):
        root = tmp_path / f"j{jobs}"
        root.mkdir()
        for name, data in sources.items():
            (root / name).write_bytes(data)
        monkeypatch.chdir(root)
        result = invoke("-j", jobs, ".")
        assert result.exit_code == 0, result.stderr
        assert {name: (root / name).read_bytes() for name in sources} == expected


def test_unparsable_file_is_reported_with_position_and_others_still_run(tmp_path: Path) -> None:
    files = make_tree(tmp_path)
    broken = tmp_path / "broken.py"
    broken.write_bytes(BROKEN)
    result = invoke(tmp_path)
    assert result.exit_code == 1
    assert re.search(rf"^{re.escape(str(broken))}:3:\d+: error: ", result.stderr, re.MULTILINE), result.stderr
    assert "Traceback" not in result.stderr
    assert broken.read_bytes() == BROKEN
    assert files["model"].read_bytes() == expected(HAIKU, files["model"])
    assert summary(result) == (3, 1, 1, summary(result)[3], 1)


def test_undecodable_file_is_named_and_untouched(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    data = HAIKU + b'NAME = "\xff\xfe"\n'
    bad.write_bytes(data)
    (tmp_path / "model.py").write_bytes(HAIKU)
    result = invoke(tmp_path)
    assert result.exit_code == 1
    assert re.search(rf"^{re.escape(str(bad))}:(\d+:\d+:)? error: .*decode", result.stderr, re.MULTILINE), result.stderr
    assert bad.read_bytes() == data
    assert (tmp_path / "model.py").read_bytes() != HAIKU


def test_missing_path_exits_2_naming_it(tmp_path: Path) -> None:
    (tmp_path / "model.py").write_bytes(HAIKU)
    result = invoke(tmp_path, tmp_path / "nope")
    assert result.exit_code == 2
    assert str(tmp_path / "nope") in result.stderr
    assert (tmp_path / "model.py").read_bytes() == HAIKU  # usage errors change nothing


def test_conflicting_modes_are_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "model.py").write_bytes(HAIKU)
    assert invoke("--diff", "--check", tmp_path).exit_code == 2
    assert invoke("--force", tmp_path).exit_code == 2
    assert (tmp_path / "model.py").read_bytes() == HAIKU


def test_crlf_bom_non_ascii_and_permissions_are_preserved(tmp_path: Path) -> None:
    source = b"\xef\xbb\xbf" + HAIKU.replace(b"\n", b"\r\n") + "# café ☕\r\n".encode()
    model = tmp_path / "model.py"
    model.write_bytes(source)
    model.chmod(0o751)
    result = invoke(tmp_path)
    assert result.exit_code == 0, result.stderr
    new = model.read_bytes()
    assert new == expected(source, model)
    assert new.startswith(b"\xef\xbb\xbf")
    assert b"\n" not in new.replace(b"\r\n", b"")
    assert "# café ☕\r\n".encode() in new
    assert stat.S_IMODE(model.stat().st_mode) == 0o751


def test_pep263_cookie_file_keeps_its_encoding(tmp_path: Path) -> None:
    source = b"# -*- coding: latin-1 -*-\n" + HAIKU + b'GREETING = "caf\xe9"\n'
    model = tmp_path / "model.py"
    model.write_bytes(source)
    result = invoke(model)
    assert result.exit_code == 0, result.stderr
    assert model.read_bytes() == expected(source, model)
    assert b'GREETING = "caf\xe9"\n' in model.read_bytes()


def test_read_only_file_is_reported_and_the_rest_continue(tmp_path: Path) -> None:
    files = make_tree(tmp_path)
    locked = tmp_path / "locked.py"
    locked.write_bytes(HAIKU)
    locked.chmod(0o444)
    result = invoke(tmp_path)
    assert result.exit_code == 1
    assert re.search(rf"^{re.escape(str(locked))}: error: .*read-only", result.stderr, re.MULTILINE), result.stderr
    assert locked.read_bytes() == HAIKU
    assert files["model"].read_bytes() == expected(HAIKU, files["model"])


def test_failed_replace_leaves_the_original_and_no_temp_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = tmp_path / "model.py"
    model.write_bytes(HAIKU)

    def refuse(src: str, dst: str) -> None:
        raise PermissionError(13, "Permission denied", dst)

    monkeypatch.setattr(os, "replace", refuse)
    result = invoke(model)
    assert result.exit_code == 1
    assert f"{model}: error: Permission denied" in result.stderr
    assert model.read_bytes() == HAIKU
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.py"]


def test_todos_are_listed_on_stderr_and_do_not_fail_the_run(tmp_path: Path) -> None:
    model = tmp_path / "model.py"
    # Flax has no VectorQuantizer: no exact rewrite, an honest TODO.
    source = HAIKU + b"\n\nvq = hk.nets.VectorQuantizer(4, 2, 0.25)\n"
    model.write_bytes(source)
    todos = migrate_source(source, str(model)).todos
    assert todos, "the fixture must contain something the engine cannot convert"
    result = invoke(model)
    assert result.exit_code == 0, result.stderr
    for todo in todos:
        assert f"{model}:{todo.line}: TODO {todo.construct}: {todo.reason}" in result.stderr
    assert summary(result)[3] == len(todos)


def test_main_returns_the_exit_code(tmp_path: Path) -> None:
    """``flaxify.cli.main`` (the console script) must pass 1 and 2 through, not 0."""
    (tmp_path / "broken.py").write_bytes(BROKEN)
    assert main(["migrate", "--check", str(tmp_path)]) == 1
    assert main(["migrate", str(tmp_path / "nope")]) == 2


@pytest.mark.parametrize("table", ['exclude = "gen_*"', "exclude = [", "exclude = [1]"])
def test_bad_migrate_config_is_a_usage_error_naming_pyproject(tmp_path: Path, table: str) -> None:
    (tmp_path / "model.py").write_bytes(HAIKU)
    (tmp_path / "pyproject.toml").write_text(f"[tool.flaxify.migrate]\n{table}\n")
    result = invoke(tmp_path)
    assert result.exit_code == 2
    assert f"{tmp_path / 'pyproject.toml'}:" in result.stderr
    assert (tmp_path / "model.py").read_bytes() == HAIKU
