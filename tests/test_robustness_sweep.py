"""The CI slice of the robustness sweep: migrate and lint over a fixed sample of real installed code.

``benchmarks/sweep.py`` runs the same checks over every ``.py`` file in site-packages
(thousands) and commits its result; this file runs a deterministic sample of about
150 of them so that CI catches a regression in a couple of minutes. The sample is
chosen by a hash of each file's path inside site-packages, so it is the same on every
machine with the same pinned packages, and it always holds some Haiku sources.

For each file: migrate either processes it or reports a clean parse error (never an
internal error); a file without ``haiku`` comes out byte-identical; a migrated file
still compiles and is a fixed point of a second run; its diff renders. Lint takes the
whole sample as one project without raising, each file linted or reported as JX001.
"""

from __future__ import annotations

import hashlib
import os
from functools import cache
from pathlib import Path

import jax
import pytest

from flaxify.lint.engine import PARSE_ERROR, SourceFile, lint_sources
from flaxify.lint.files import read_source
from flaxify.lint.settings import LintSettings
from flaxify.migrate import migrate_source
from flaxify.migrate.api import SourceError
from flaxify.migrate.runner import unified_diff

SITE = Path(jax.__file__).resolve().parent.parent
ONE_IN = 45  # ~140 of ~6,000 files
HAIKU_FILES = 12  # Haiku files cost seconds each to migrate; a few small ones cover the engine
HAIKU_MAX_BYTES = 6_000


def bucket(relative: str) -> int:
    """A stable pseudo-random number for a path (``hash()`` is salted per process)."""
    return int.from_bytes(hashlib.blake2b(relative.encode(), digest_size=8).digest(), "big")


@cache
def sample() -> tuple[str, ...]:
    """The fixed sample, as paths relative to site-packages, sorted."""
    every = sorted(
        (Path(folder) / name).relative_to(SITE).as_posix()
        for folder, _, names in os.walk(SITE)
        for name in names
        if name.endswith(".py")
    )
    plain = [rel for rel in every if bucket(rel) % ONE_IN == 0]
    haiku = [rel for rel in every if _small_haiku(SITE / rel)]
    haiku = sorted(haiku, key=bucket)[:HAIKU_FILES]
    return tuple(sorted({*plain, *haiku}))


def _small_haiku(path: Path) -> bool:
    """A Haiku-mentioning file small enough to migrate in a second or two."""
    try:
        return path.stat().st_size <= HAIKU_MAX_BYTES and b"haiku" in path.read_bytes()
    except OSError:
        return False


def test_the_sample_is_representative() -> None:
    files = sample()
    assert len(files) >= 100
    assert sum(1 for rel in files if b"haiku" in (SITE / rel).read_bytes()) >= HAIKU_FILES // 2
    assert len({rel.split("/")[0] for rel in files}) >= 10  # many packages, not one


@pytest.mark.parametrize("relative", sample())
def test_migrate_processes_or_reports_cleanly(relative: str) -> None:
    path = SITE / relative
    original = path.read_bytes()
    try:
        migrated = migrate_source(original, relative)
    except SourceError as err:  # a clean, positioned parse error is an allowed outcome
        assert err.line >= 1 and err.column >= 1 and err.message
        return
    if b"haiku" not in original:
        assert migrated.source == original
        return
    if migrated.changed:
        compile(migrated.source, relative, "exec")  # still Python (compiling never runs it)
        assert unified_diff(original, migrated.source, relative).startswith(f"--- a/{relative}")
    assert migrate_source(migrated.source, relative).source == migrated.source, "not a fixed point"


def test_lint_takes_the_whole_sample_as_one_project() -> None:
    files = [SourceFile(SITE / rel, rel, read_source(SITE / rel)) for rel in sample()]
    result = lint_sources(files, LintSettings())
    assert result.files == len(files)
    assert getattr(result, "internal", []) == []  # rule crashes, recorded instead of raised
    failed = set(result.failed)
    unreadable = {item.display for item in files if item.source is None}
    # Every failure is a reported JX001 at a real position, never a silent drop.
    for finding in result.findings:
        assert finding.path in {item.display for item in files}
        assert finding.line >= 1 and finding.column >= 1
    assert unreadable <= failed
    assert failed <= {f.path for f in result.findings if f.code == PARSE_ERROR}
