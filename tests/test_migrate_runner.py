"""The pieces of ``flaxify.migrate.runner``: discovery, planning, atomic writes, diffs, reports.

Most of these run on files without Haiku, so they pin the driver without depending
on what the rewrite engine produces.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from flaxify.migrate import Todo
from flaxify.migrate.runner import (
    TEMP_SUFFIX,
    FileResult,
    Job,
    MigrateUsageError,
    Mode,
    Summary,
    discover,
    migrate_file,
    plan,
    report,
    run,
    unified_diff,
    write_atomic,
)

PLAIN = b"x = 1\n"


def touch(root: Path, *names: str) -> None:
    """Creates plain Python files (and their folders) under ``root``."""
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(PLAIN)


def found_names(root: Path, paths: list[str], excludes: tuple[str, ...] = ()) -> list[str]:
    """The discovered files, relative to ``root``, in discovery order."""
    found, unreadable = discover(paths, excludes)
    assert unreadable == []
    return [f.real.relative_to(root.resolve()).as_posix() for f in found]


def test_discover_walks_sorted_and_skips_tooling_folders(tmp_path: Path) -> None:
    touch(tmp_path, "b.py", "a.py", "pkg/z.py", "pkg/sub/y.py", "notes.txt", "script")
    touch(tmp_path, ".git/h.py", ".venv/v.py", "venv/v.py", "__pycache__/c.py", "build/b.py")
    touch(tmp_path, "dist/d.py", ".tox/t.py", "node_modules/n.py", ".cache/c.py")
    assert found_names(tmp_path, [str(tmp_path)]) == ["a.py", "b.py", "pkg/sub/y.py", "pkg/z.py"]


def test_discover_keeps_path_order_takes_named_files_and_drops_duplicates(tmp_path: Path) -> None:
    touch(tmp_path, "a.py", "pkg/z.py", "script")
    paths = [str(tmp_path / "script"), str(tmp_path / "pkg"), str(tmp_path / "pkg" / "z.py"), str(tmp_path)]
    assert found_names(tmp_path, paths) == ["script", "pkg/z.py", "a.py"]


def test_discover_applies_excludes_to_names_and_relative_paths(tmp_path: Path) -> None:
    touch(tmp_path, "a.py", "model_pb2.py", "legacy/old.py", "pkg/legacy.py", "pkg/keep.py")
    excludes = ("*_pb2.py", "legacy", "pkg/legacy.py")
    assert found_names(tmp_path, [str(tmp_path)], excludes) == ["a.py", "pkg/keep.py"]
    # A file named on the command line is migrated even if a glob matches it.
    assert found_names(tmp_path, [str(tmp_path / "model_pb2.py")], excludes) == ["model_pb2.py"]


def test_discover_follows_symlinks_only_inside_the_tree(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    touch(tree, "a.py")
    touch(tmp_path, "outside.py", "elsewhere/e.py")
    (tree / "alias.py").symlink_to(tree / "a.py")  # same file: found once
    (tree / "out.py").symlink_to(tmp_path / "outside.py")
    (tree / "dir").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (tree / "loop").symlink_to(tree, target_is_directory=True)
    (tree / "dangling.py").symlink_to(tree / "missing.py")
    assert found_names(tmp_path, [str(tree)]) == ["tree/a.py"]


def test_discover_refuses_to_read_a_fifo(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.py")
    touch(tmp_path, "a.py")
    found, unreadable = discover([str(tmp_path / "pipe.py"), str(tmp_path)], ())
    assert [f.real.name for f in found] == ["a.py"]  # the walk skips it, naming it fails
    assert [(r.path, r.status) for r in unreadable] == [(str(tmp_path / "pipe.py"), "failed")]


def test_discover_names_missing_paths(tmp_path: Path) -> None:
    with pytest.raises(MigrateUsageError, match="nope"):
        discover([str(tmp_path), str(tmp_path / "nope")], ())


def test_plan_output_paths_are_relative_to_the_common_folder(tmp_path: Path) -> None:
    touch(tmp_path / "src", "top.py", "pkg/m.py")
    out = tmp_path / "out"
    jobs, _ = plan([str(tmp_path / "src" / "top.py"), str(tmp_path / "src" / "pkg")], Mode.OUTPUT, output_dir=out)
    assert [job.target for job in jobs] == [out / "top.py", out / "pkg" / "m.py"]
    jobs, _ = plan([str(tmp_path / "src")], Mode.OUTPUT, output_dir=out)
    assert [job.target for job in jobs] == [out / "pkg" / "m.py", out / "top.py"]


def test_plan_never_lets_an_output_land_on_an_input(tmp_path: Path) -> None:
    touch(tmp_path, "a.py")
    with pytest.raises(MigrateUsageError, match="would overwrite the input"):
        plan([str(tmp_path / "a.py")], Mode.OUTPUT, output_dir=tmp_path, force=True)
    with pytest.raises(MigrateUsageError, match="inside"):
        plan([str(tmp_path)], Mode.OUTPUT, output_dir=tmp_path / "sub" / "out")


def test_write_atomic_replaces_content_and_sets_mode(tmp_path: Path) -> None:
    target = tmp_path / "m.py"
    target.write_bytes(b"old\n")
    write_atomic(target, b"new\r\n", 0o640)
    assert target.read_bytes() == b"new\r\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["m.py"]


@pytest.mark.parametrize("failing", ["fsync", "replace"])
def test_write_atomic_failure_keeps_the_original_and_removes_the_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    target = tmp_path / "m.py"
    target.write_bytes(b"old\n")

    def fail(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, failing, fail)
    with pytest.raises(OSError, match="No space left"):
        write_atomic(target, b"new\n", 0o644)
    assert target.read_bytes() == b"old\n"
    assert not list(tmp_path.glob(f"*{TEMP_SUFFIX}"))


def test_unified_diff_keeps_line_endings_and_marks_a_missing_final_newline() -> None:
    diff = unified_diff(b"a = 1\r\nb = 2", b"a = 1\r\nb = 3", "m.py")
    assert diff.splitlines(keepends=True) == [
        "--- a/m.py\n",
        "+++ b/m.py\n",
        "@@ -1,2 +1,2 @@\n",
        " a = 1\r\n",
        "-b = 2\n",
        "\\ No newline at end of file\n",
        "+b = 3\n",
        "\\ No newline at end of file\n",
    ]


def test_unified_diff_decodes_like_python() -> None:
    latin = b"# -*- coding: latin-1 -*-\nname = 'caf\xe9'\n"
    assert "+name = 'café!'\n" in unified_diff(latin, latin.replace(b"\xe9", b"\xe9!"), "m.py")
    bom = b"\xef\xbb\xbfx = 1\n"
    assert unified_diff(bom, bom + b"y = 2\n", "m.py").endswith("\n x = 1\n+y = 2\n")


def test_migrate_file_reports_a_missing_file_instead_of_raising(tmp_path: Path) -> None:
    result = migrate_file(Job(tmp_path / "gone.py", "gone.py", Mode.IN_PLACE))
    assert (result.status, result.path, result.error) == ("failed", "gone.py", "No such file or directory")


def test_run_keeps_job_order_with_workers_and_leaves_plain_files_alone(tmp_path: Path) -> None:
    names = [f"m{index}.py" for index in range(6)]
    touch(tmp_path, *names)
    jobs = [Job(tmp_path / name, name, Mode.IN_PLACE) for name in reversed(names)]
    serial = list(run(jobs, workers=1))
    parallel = list(run(jobs, workers=3))
    assert serial == parallel
    assert [result.path for result in parallel] == [job.display for job in jobs]
    assert {result.status for result in parallel} == {"unchanged"}
    assert all((tmp_path / name).read_bytes() == PLAIN for name in names)


def test_summary_and_report_count_every_status() -> None:
    todo = Todo(line=3, construct="hk.GRU", reason="gate layout differs")
    results = [
        FileResult("a.py", "changed", todos=(todo,), output="out/a.py"),
        FileResult("b.py", "unchanged"),
        FileResult("c.py", "failed", error="cannot parse", line=2, column=5),
    ]
    assert Summary.of(results) == Summary(scanned=3, migrated=1, unchanged=1, todos=1, failed=1)
    data = report(results, Mode.OUTPUT)
    assert data["files"] == [
        {"path": "a.py", "status": "changed", "error": None, "output": "out/a.py"},
        {"path": "b.py", "status": "unchanged", "error": None},
        {"path": "c.py", "status": "failed", "error": "cannot parse", "line": 2, "column": 5},
    ]
    assert data["todos"] == [{"file": "out/a.py", "line": 3, "construct": "hk.GRU", "reason": "gate layout differs"}]
    assert data["summary"] == {"scanned": 3, "migrated": 1, "unchanged": 1, "todos": 1, "failed": 1}
