"""The lint API: paths and settings in, a :class:`LintResult` out.

Optional content-keyed cache (``.flaxify_cache/``) and ``-j N`` workers live
here; the engine itself is single-threaded and pure.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from flaxify.lint import cache as result_cache
from flaxify.lint.engine import LintResult, SourceFile, lint_sources
from flaxify.lint.files import discover, display_path, read_source
from flaxify.lint.settings import LintSettings


def load_sources(paths: Sequence[Path]) -> list[SourceFile]:
    """Reads every Python file under ``paths``."""
    return [SourceFile(p, display_path(p), read_source(p)) for p in discover(paths)]


def lint_paths(paths: Sequence[Path], settings: LintSettings, *, jobs: int = 1,
               cache_dir: Path | None = None) -> LintResult:
    """Lints the files under ``paths`` as one project."""
    files = load_sources(paths)
    key = result_cache.run_key(files, settings) if cache_dir is not None else None
    if key is not None and cache_dir is not None:
        cached = result_cache.load(cache_dir, key)
        if cached is not None:
            return cached
    if jobs > 1:
        from flaxify.lint.parallel import lint_parallel

        result = lint_parallel(files, settings, jobs)
    else:
        result = lint_sources(files, settings)
    if key is not None and cache_dir is not None:
        result_cache.store(cache_dir, key, result)
    return result
