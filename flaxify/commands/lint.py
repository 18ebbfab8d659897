"""``flaxify lint``: the jit-purity linter (static: never imports or runs the linted code)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import click

from flaxify import reporting
from flaxify.config import ConfigError, find_pyproject, load_config
from flaxify.lint.api import lint_paths
from flaxify.lint.cache import default_dir
from flaxify.lint.engine import LintResult
from flaxify.lint.files import decode_source
from flaxify.lint.fixes import apply_fixes, fixable
from flaxify.lint.output import FORMATS, render
from flaxify.lint.rules import ALL_CODES
from flaxify.lint.settings import LintSettings, SettingsError, build_settings

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE = 0, 1, 2


@click.command("lint")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--select", metavar="CODES", help="Comma-separated codes or prefixes to run (replaces the config's).")
@click.option("--ignore", metavar="CODES", help="Comma-separated codes or prefixes to skip.")
@click.option("--extend-select", metavar="CODES", help="Codes to run in addition to the selected ones.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True,
              help="Output format on stdout.")
@click.option("--fix", is_flag=True, help="Apply safe fixes in place, then report what is left.")
@click.option("--unsafe-fixes", is_flag=True, help="With --fix, also apply fixes that may change behaviour.")
@click.option("--exit-zero", is_flag=True, help="Exit 0 even when there are findings.")
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Worker processes.")
@click.option("--no-cache", is_flag=True, help="Do not read or write the result cache.")
@click.option("--cache-dir", type=click.Path(path_type=Path), default=None,
              help="Cache folder (default .flaxify_cache, or $FLAXIFY_CACHE_DIR).")
@click.pass_context
def lint(ctx: click.Context, paths: tuple[Path, ...], select: str | None, ignore: str | None,
         extend_select: str | None, fmt: str, fix: bool, unsafe_fixes: bool, exit_zero: bool, jobs: int,
         no_cache: bool, cache_dir: Path | None) -> None:
    """Flag code that breaks jax.jit and friends: side effects, tracer misuse, Flax/Haiku misuse.

    Only code that JAX traces is checked (jit/vmap/grad/scan/cond bodies, Flax and Haiku
    module methods, Haiku-transformed functions) and every project function such code
    calls, across modules. Static: the linted code is parsed, never imported or run.
    """
    try:
        settings = _settings(paths, select, ignore, extend_select, unsafe_fixes)
    except (ConfigError, SettingsError) as err:
        reporting.err(f"error: {err}")
        ctx.exit(EXIT_USAGE)
        return
    folder = None if no_cache or fix else (cache_dir or default_dir())
    try:
        result = lint_paths(list(paths), settings, jobs=jobs, cache_dir=folder)
        if fix:
            fixed = _apply(result, settings.unsafe_fixes)
            if fixed:
                reporting.err(f"Fixed {fixed} finding{'s' if fixed != 1 else ''}.")
                result = lint_paths(list(paths), settings, jobs=jobs)
    except OSError as err:
        reporting.err(f"error: {err}")
        ctx.exit(EXIT_USAGE)
        return
    _print(result, fmt, settings)
    for line in result.internal:
        reporting.err(f"error: {line} (a flaxify bug; please report it)")
    failed = bool(result.findings or result.internal)
    ctx.exit(EXIT_OK if exit_zero or not failed else EXIT_FINDINGS)


def _settings(paths: tuple[Path, ...], select: str | None, ignore: str | None, extend_select: str | None,
              unsafe_fixes: bool) -> LintSettings:
    start = paths[0] if paths else Path.cwd()
    pyproject = find_pyproject(Path.cwd()) or find_pyproject(start)
    table = load_config(pyproject, "lint") if pyproject else {}
    return build_settings(table, pyproject, ALL_CODES, select=select, ignore=ignore, extend_select=extend_select,
                          unsafe_fixes=unsafe_fixes)


def _apply(result: LintResult, unsafe: bool) -> int:
    """Writes the fixes file by file; returns how many were applied."""
    by_path: dict[str, list] = defaultdict(list)  # type: ignore[type-arg]
    for finding in result.findings:
        if fixable(finding, unsafe):
            by_path[finding.path].append(finding)
    total = 0
    for path, findings in by_path.items():
        file = Path(path)
        source, encoding = decode_source(file.read_bytes())  # written back in the file's own encoding
        fixed, count = apply_fixes(source, findings, unsafe)
        if count and fixed != source:
            file.write_bytes(fixed.encode(encoding))
            total += count
    return total


def _print(result: LintResult, fmt: str, settings: LintSettings) -> None:
    if result.findings or fmt in ("json", "sarif"):
        reporting.out(render(result.findings, fmt))
    count = len(result.findings)
    if not count:
        reporting.err(f"All checks passed ({result.files} file{'s' if result.files != 1 else ''}).")
        return
    safe = sum(1 for f in result.findings if fixable(f, False))
    unsafe = sum(1 for f in result.findings if fixable(f, True)) - safe
    summary = f"Found {count} finding{'s' if count != 1 else ''} ({result.files} file{'s' if result.files != 1 else ''} checked)."
    if safe:
        summary += f" {safe} fixable with --fix."
    if unsafe and not settings.unsafe_fixes:
        summary += f" {unsafe} more with --fix --unsafe-fixes."
    if result.failed:
        summary += f" {len(result.failed)} file(s) could not be parsed."
    reporting.err(summary)
