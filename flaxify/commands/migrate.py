"""``flaxify migrate``: rewrite Haiku code into Flax Linen, in place, as a diff, or into a new tree.

A thin command: it reads the options and ``[tool.flaxify.migrate]``, hands the files
to :mod:`flaxify.migrate.runner`, and prints what came back through
:mod:`flaxify.reporting` (diffs on stdout; errors, TODOs and the summary on stderr).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import click

from flaxify import reporting
from flaxify.config import ConfigError, find_pyproject, load_config
from flaxify.migrate import runner
from flaxify.migrate.runner import FileResult, MigrateUsageError, Mode, Summary

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
PREFIX = "flaxify migrate"


@click.command("migrate")
@click.argument("paths", nargs=-1, required=True, metavar="PATH...")
@click.option("--diff", "show_diff", is_flag=True, help="Print a unified diff on stdout; write nothing.")
@click.option("--check", is_flag=True, help="Write nothing; exit 1 if any file would change.")
@click.option(
    "-o",
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    metavar="DIR",
    help="Write the migrated tree under DIR (relative paths kept); leave the originals untouched.",
)
@click.option("--force", is_flag=True, help="With -o, overwrite files that already exist under DIR.")
@click.option(
    "-j",
    "--jobs",
    type=click.IntRange(min=0),
    default=1,
    show_default=True,
    help="Files migrated in parallel (processes); 0 means one per CPU.",
)
@click.option(
    "--report",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE.json",
    help="Also write every file's status, every TODO and the counts as JSON.",
)
@click.option(
    "--exclude",
    multiple=True,
    metavar="GLOB",
    help="Skip files and folders matching GLOB while walking folders (repeatable; adds to "
    "`exclude` in [tool.flaxify.migrate]). Files named explicitly are always migrated.",
)
@click.pass_context
def migrate(
    ctx: click.Context,
    paths: tuple[str, ...],
    show_diff: bool,
    check: bool,
    output: Path | None,
    force: bool,
    jobs: int,
    report: Path | None,
    exclude: tuple[str, ...],
) -> None:
    """Rewrite the Haiku code in PATH... into Flax Linen (files in place by default).

    Folders are walked for *.py files. The code is parsed, never imported or run.
    Files without Haiku are left byte-identical; what cannot be converted exactly
    is marked `# TODO(flaxify): <why>` and listed. Exit status: 0 done or nothing to
    change; 1 --check would change files, or some file failed; 2 usage error.
    """
    mode = _mode(show_diff, check, output, force)
    if report is not None and not report.absolute().parent.is_dir():
        # Checked first: a report that cannot be written must not follow a rewrite.
        raise click.BadParameter(f"folder {report.parent} does not exist", param_hint="--report")
    try:
        excludes = (*_config_excludes(paths), *exclude)
        jobs_to_run, unreadable = runner.plan(paths, mode, excludes, output, force)
    except ConfigError as err:  # its message already names the file
        reporting.err(str(err))
        ctx.exit(EXIT_USAGE)
    except MigrateUsageError as err:
        reporting.err(f"{PREFIX}: error: {err}")
        ctx.exit(EXIT_USAGE)
    workers = jobs or os.cpu_count() or 1
    ran = reporting.progress(runner.run(jobs_to_run, workers), length=len(jobs_to_run), label=PREFIX)
    results = [*unreadable, *ran]
    ctx.exit(_finish(results, mode, report))


def _mode(show_diff: bool, check: bool, output: Path | None, force: bool) -> Mode:
    """The one mode the options ask for; click usage errors (exit 2) for conflicts."""
    chosen = [name for name, on in (("--diff", show_diff), ("--check", check), ("-o", output)) if on]
    if len(chosen) > 1:
        raise click.UsageError(f"{' and '.join(chosen)} cannot be combined; choose one.")
    if force and output is None:
        raise click.UsageError("--force only applies with -o DIR.")
    if show_diff:
        return Mode.DIFF
    if check:
        return Mode.CHECK
    return Mode.OUTPUT if output is not None else Mode.IN_PLACE


def _config_excludes(paths: Sequence[str]) -> tuple[str, ...]:
    """``exclude = [...]`` from ``[tool.flaxify.migrate]`` of the pyproject.toml above ``paths``."""
    # The project the files belong to decides, not where the command happens to run.
    common = Path(os.path.commonpath([os.path.abspath(path) for path in paths]))
    excludes = load_config(common, "migrate").get("exclude", [])
    if not isinstance(excludes, list) or not all(isinstance(glob, str) for glob in excludes):
        where = find_pyproject(common)
        raise ConfigError(f"{where}: error: [tool.flaxify.migrate] exclude must be a list of glob strings")
    return tuple(excludes)


def _finish(results: Sequence[FileResult], mode: Mode, report: Path | None) -> int:
    """Prints diffs, errors, TODOs and the summary; writes the report; returns the exit code."""
    for result in results:
        if result.diff:
            reporting.out(result.diff, nl=False)
    for result in results:
        _print_file(result)
    summary = Summary.of(results)
    reporting.err(_summary_line(summary, mode))
    if report is not None:
        try:
            report.write_text(json.dumps(runner.report(results, mode), indent=2) + "\n", encoding="utf-8")
        except OSError as err:
            reporting.err(f"{PREFIX}: error: cannot write the report {report}: {err.strerror or err}")
            return EXIT_USAGE
    would_change = mode is Mode.CHECK and summary.migrated > 0
    return EXIT_FAILED if summary.failed or would_change else EXIT_OK


def _print_file(result: FileResult) -> None:
    """One file's error, or its TODOs, on stderr."""
    if result.error is not None and result.line is not None and result.column is not None:
        reporting.error_at(result.path, result.line, result.column, result.error)
    elif result.error is not None:
        reporting.err(f"{result.path}: error: {result.error}")
    where = result.output or result.path  # TODO lines are lines of the file that holds them
    for todo in result.todos:
        reporting.err(f"{where}:{todo.line}: TODO {todo.construct}: {todo.reason}")


def _summary_line(summary: Summary, mode: Mode) -> str:
    """``flaxify migrate: 12 files scanned, 3 migrated, 9 unchanged, 2 TODOs, 0 failed``."""
    migrated = "migrated" if mode in (Mode.IN_PLACE, Mode.OUTPUT) else "would be migrated"
    return (
        f"{PREFIX}: {_count(summary.scanned, 'file')} scanned, {summary.migrated} {migrated}, "
        f"{summary.unchanged} unchanged, {_count(summary.todos, 'TODO')}, {summary.failed} failed"
    )


def _count(number: int, noun: str) -> str:
    """``1 file``, ``2 files``."""
    return f"{number} {noun}{'' if number == 1 else 's'}"
