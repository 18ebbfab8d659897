"""A content-keyed result cache.

The call graph spans the whole project, so a file's findings depend on other
files: the key hashes the content of every linted file (with its path), the
flaxify version, the linter's own sources (an editable install changes rules
without a new version) and the settings. An unchanged re-run reads and hashes the
files and returns the stored result without parsing anything.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from flaxify import __version__
from flaxify.lint.engine import LintResult, SourceFile
from flaxify.lint.model import Applicability, Edit, Finding, Fix
from flaxify.lint.settings import LintSettings

FORMAT = 1
KEEP = 32


def default_dir() -> Path:
    return Path(os.environ.get("FLAXIFY_CACHE_DIR", ".flaxify_cache"))


def _linter_stamp() -> str:
    """Size and mtime of every module of the linter: a rule edited in place gives a new key."""
    root = Path(__file__).resolve().parent
    stamps = []
    for path in sorted(root.rglob("*.py")):
        stat = path.stat()
        stamps.append(f"{path.relative_to(root)}:{stat.st_size}:{stat.st_mtime_ns}")
    return "|".join(stamps)


def run_key(files: Sequence[SourceFile], settings: LintSettings) -> str:
    digest = hashlib.blake2b(digest_size=20)
    digest.update(f"{FORMAT}\0{__version__}\0{_linter_stamp()}\0{settings!r}\0".encode())
    for item in files:
        digest.update(item.display.encode() + b"\0" + str(item.path.resolve()).encode() + b"\0")
        digest.update(item.source.encode("utf-8", "surrogatepass") if item.source is not None else b"\1")
        digest.update(b"\0")
    return digest.hexdigest()


def load(folder: Path, key: str) -> LintResult | None:
    path = folder / __version__ / f"{key}.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        findings = [_finding(item) for item in data["findings"]]
        return LintResult(findings, list(data["failed"]), int(data["files"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None  # missing or corrupt: lint again


def store(folder: Path, key: str, result: LintResult) -> None:
    if result.internal:
        return  # never cache a run that hit an internal error
    target = folder / __version__
    try:
        target.mkdir(parents=True, exist_ok=True)
        gitignore = folder / ".gitignore"
        if not gitignore.exists():
            gitignore.write_text("*\n", encoding="utf-8")
        payload = {"findings": [asdict(f) for f in result.findings], "failed": result.failed, "files": result.files}
        with tempfile.NamedTemporaryFile("w", dir=target, delete=False, suffix=".tmp", encoding="utf-8") as handle:
            json.dump(payload, handle)
        os.replace(handle.name, target / f"{key}.json")
        _prune(target)
    except OSError:
        pass  # a read-only tree just runs without a cache


def _prune(folder: Path, keep: int = KEEP) -> None:
    """Keeps the ``keep`` most recently written results; each edit of the project makes a new key."""
    entries = sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    for stale in entries[keep:]:
        stale.unlink(missing_ok=True)


def _finding(item: dict) -> Finding:  # type: ignore[type-arg]
    fix = item.get("fix")
    if fix is not None:
        fix = Fix(fix["message"], tuple(Edit(**e) for e in fix["edits"]), Applicability(fix["applicability"]))
    return Finding(**{**item, "fix": fix})
