"""The file-level driver of ``flaxify migrate``: find files, migrate each one, write safely.

Nothing here prints. :func:`plan` turns the command line into one :class:`Job` per
file, :func:`run` yields one :class:`FileResult` per job in the same order whatever
the number of worker processes, and ``flaxify/commands/migrate.py`` reports them
through ``flaxify.reporting``. The rewrites themselves sit behind
:func:`flaxify.migrate.migrate_source`; this module only decides what is read,
what is written where, and that a write is all-or-nothing.
"""

from __future__ import annotations

import contextlib
import difflib
import enum
import errno
import fnmatch
import io
import os
import stat
import tempfile
import tokenize
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from flaxify.migrate.api import SourceError, Todo, migrate_source
from flaxify.migrate.base import TransformInfo
from flaxify.migrate.project import ProjectIndex, index_sources

# Folders a walk never enters; any other hidden (``.``-prefixed) folder is skipped too.
SKIP_DIRS = frozenset({".git", ".venv", "venv", "__pycache__", "build", "dist", ".tox", "node_modules"})
TEMP_SUFFIX = ".flaxify-tmp"
TOO_DEEP = "expressions nested too deeply to rewrite (over Python's recursion limit); file left as it was"


class Mode(enum.Enum):
    """What happens to a file whose migration differs from the original."""

    IN_PLACE = "in-place"
    DIFF = "diff"
    CHECK = "check"
    OUTPUT = "output"


class MigrateUsageError(Exception):
    """The command line cannot be carried out safely (missing path, unsafe ``-o``): exit 2."""


@dataclass(frozen=True)
class Job:
    """One file: where it is read (and, in place, rewritten), its name, where output goes."""

    source: Path  # the real file, symlinks resolved, so a rewrite never replaces a link
    display: str  # the path as the user named it, used in every message
    mode: Mode
    target: Path | None = None  # the file written under ``-o DIR``


@dataclass(frozen=True)
class FileResult:
    """What happened to one file. ``status`` is ``changed``, ``unchanged`` or ``failed``."""

    path: str
    status: str
    todos: tuple[Todo, ...] = ()
    error: str | None = None
    line: int | None = None  # 1-based position of a parse error, when there is one
    column: int | None = None
    diff: str = ""  # unified diff, only for ``Mode.DIFF``
    output: str | None = None  # the file written under ``-o DIR``


@dataclass(frozen=True)
class Summary:
    """The counts of the one-line summary and of the JSON report."""

    scanned: int
    migrated: int
    unchanged: int
    todos: int
    failed: int

    @classmethod
    def of(cls, results: Sequence[FileResult]) -> Summary:
        """Counts ``results``."""
        statuses = [result.status for result in results]
        return cls(
            scanned=len(results),
            migrated=statuses.count("changed"),
            unchanged=statuses.count("unchanged"),
            todos=sum(len(result.todos) for result in results),
            failed=statuses.count("failed"),
        )


# --- discovery ------------------------------------------------------------------------


@dataclass(frozen=True)
class Found:
    """A file to migrate, before the mode decides where its output goes."""

    display: Path  # PATH as given, joined with the part below it that the walk found
    real: Path  # symlinks resolved: identity (deduplication) and the file actually written


def discover(paths: Sequence[str], excludes: Sequence[str]) -> tuple[list[Found], list[FileResult]]:
    """Returns the files under ``paths`` in a stable order, and folders that could not be read.

    A named file is taken whatever its extension and whatever ``excludes`` say; folders are
    walked for ``*.py`` without entering skipped or excluded folders or following symlinks
    out of the tree. Raises :class:`MigrateUsageError` for a path that does not exist.
    """
    missing = [path for path in paths if not os.path.lexists(path)]
    if missing:
        raise MigrateUsageError(f"no such file or directory: {', '.join(missing)}")
    found: dict[Path, Found] = {}
    unreadable: list[FileResult] = []
    for name in paths:
        path = Path(name)
        if _special(path):  # reading a FIFO or a device could block or never end
            unreadable.append(FileResult(name, "failed", error="not a regular file or a folder"))
            continue
        walked = [path] if not path.is_dir() else sorted(_walk(path, excludes, unreadable))
        for file in walked:
            real = file.resolve()
            found.setdefault(real, Found(display=file, real=real))
    return list(found.values()), unreadable


def _special(path: Path) -> bool:
    """True for something that exists but is neither a regular file nor a folder."""
    return path.exists() and not (path.is_file() or path.is_dir())


def _walk(root: Path, excludes: Sequence[str], unreadable: list[FileResult]) -> Iterator[Path]:
    """Yields the ``*.py`` files below ``root``; sorted listings keep error order stable too."""
    real_root = root.resolve()

    def on_error(err: OSError) -> None:
        unreadable.append(FileResult(str(err.filename), "failed", error=_os_message(err)))

    # followlinks=False: a symlinked folder is never entered, so no loops and no escape.
    for folder, dirs, files in os.walk(root, onerror=on_error):
        here = Path(folder)
        dirs[:] = sorted(d for d in dirs if not _skipped_dir(d) and not _excluded(here / d, root, excludes))
        for name in sorted(files):
            file = here / name
            if name.endswith(".py") and not _excluded(file, root, excludes) and _inside(file, real_root):
                yield file


def _skipped_dir(name: str) -> bool:
    """True for folders that hold tooling, environments or build output, never user code."""
    return name.startswith(".") or name in SKIP_DIRS


def _excluded(path: Path, root: Path, excludes: Sequence[str]) -> bool:
    """True if a glob matches the name, the path below ``root`` or the path as displayed."""
    candidates = (path.name, path.relative_to(root).as_posix(), path.as_posix())
    return any(fnmatch.fnmatch(text, glob) for glob in excludes for text in candidates)


def _inside(file: Path, real_root: Path) -> bool:
    """True if ``file`` (a symlink, maybe) is a regular file that resolves inside the tree."""
    real = file.resolve()
    return real.is_file() and real_root in real.parents


# --- planning ---------------------------------------------------------------------------


def plan(
    paths: Sequence[str],
    mode: Mode,
    excludes: Sequence[str] = (),
    output_dir: Path | None = None,
    force: bool = False,
) -> tuple[list[Job], list[FileResult]]:
    """Returns the jobs to run, and failures found while walking (unreadable folders).

    Under ``Mode.OUTPUT`` each file goes to ``output_dir`` at its path relative to the
    common folder of ``paths``. Raises :class:`MigrateUsageError` if ``output_dir`` is
    inside a walked folder, if an output would land on an input, or if it would
    overwrite an existing file without ``force``.
    """
    found, unreadable = discover(paths, excludes)
    if mode is not Mode.OUTPUT:
        return [Job(f.real, str(f.display), mode) for f in found], unreadable
    assert output_dir is not None, "Mode.OUTPUT needs an output folder"
    _check_output_dir(paths, output_dir)
    base = Path(os.path.commonpath([_base_of(Path(path)) for path in paths]))
    jobs = [Job(f.real, str(f.display), mode, output_dir / _relative(f.display, base)) for f in found]
    _check_targets(jobs, force)
    return jobs, unreadable


def _base_of(path: Path) -> str:
    """The folder output paths are taken relative to: a folder itself, a file's parent."""
    folder = path if path.is_dir() else path.parent
    return os.path.abspath(folder)  # abspath, not resolve: keep the names the user sees


def _relative(display: Path, base: Path) -> Path:
    """``display`` below ``base``, both made absolute the same way."""
    return Path(os.path.abspath(display)).relative_to(base)


def _check_output_dir(paths: Sequence[str], output_dir: Path) -> None:
    """Refuses an output folder inside a folder being migrated (a rerun would walk it)."""
    out = output_dir.resolve()
    for name in paths:
        folder = Path(name).resolve()
        if Path(name).is_dir() and (out == folder or folder in out.parents):
            raise MigrateUsageError(f"output folder {output_dir} is inside {name}; choose a folder outside it")


def _check_targets(jobs: Sequence[Job], force: bool) -> None:
    """Refuses to write onto an input at all, or onto an existing file without ``force``."""
    sources = {job.source for job in jobs}
    for job in jobs:
        assert job.target is not None
        if job.target.resolve() in sources:
            raise MigrateUsageError(f"{job.target} would overwrite the input {job.display}")
        if not force and os.path.lexists(job.target):
            raise MigrateUsageError(f"{job.target} already exists; pass --force to overwrite it")


# --- running ----------------------------------------------------------------------------


def run(jobs: Sequence[Job], workers: int = 1) -> Iterator[FileResult]:
    """Yields one result per job, in job order; ``workers > 1`` uses that many processes.

    Every file is first indexed (:func:`index_project`) so that a call site in one file
    follows a model defined in another, whichever process migrates either.

    With workers, only the files that need the rewrite engine go to the pool, one per
    task, largest first: they cost 10-1000x a file without Haiku, which the parent
    answers itself (a substring test). Chunking the job list instead would hand one
    worker a whole folder of Haiku files while the other idles.
    """
    project = index_project(jobs)
    heavy = [job for job in jobs if job.source in project.needs_engine]
    if workers <= 1 or len(heavy) <= 1:
        yield from (migrate_file(job, project.index) for job in jobs)
        return
    # The index goes over once per worker, as a plain dict: a mappingproxy cannot be pickled.
    adopt = (dict(project.index.transformed),)
    with ProcessPoolExecutor(max_workers=min(workers, len(heavy)), initializer=_adopt_project, initargs=adopt) as pool:
        largest_first = sorted(heavy, key=lambda job: -project.needs_engine[job.source])
        futures = {job.source: pool.submit(_migrate_in_worker, job) for job in largest_first}
        for job in jobs:
            future = futures.get(job.source)
            yield future.result() if future is not None else migrate_file(job, project.index)


@dataclass(frozen=True)
class IndexedProject:
    """The cross-file index, and the files that need the engine (real path → size in bytes)."""

    index: ProjectIndex
    needs_engine: dict[Path, int]


def index_project(jobs: Sequence[Job]) -> IndexedProject:
    """Records the transformed models of every file (a cheap ``ast`` read of Haiku files).

    Files are indexed one at a time so that one the ``ast`` module cannot build (a
    3,000-term expression overflows its recursion limit) only drops out of the index;
    its own migration then reports it.
    """
    transformed: dict[tuple[str, str], TransformInfo] = {}
    heavy: dict[Path, int] = {}
    for job, source in _contents(jobs):
        if b"haiku" in source:
            heavy[job.source] = len(source)
        with contextlib.suppress(RecursionError, MemoryError):
            transformed.update(index_sources([(Path(job.display), source)]).transformed)
    index = ProjectIndex(MappingProxyType(transformed))
    if transformed:  # `from model import net` makes a file without Haiku need the engine too
        rest = [job for job in jobs if job.source not in heavy]
        heavy.update((job.source, len(source)) for job, source in _contents(rest) if index.imported_by(source))
    # The same pre-check as migrate_source's; a file that changes between the two reads
    # only moves between the parent and a worker, its result is the same.
    return IndexedProject(index, heavy)


def _contents(jobs: Sequence[Job]) -> Iterator[tuple[Job, bytes]]:
    """Each readable job with its bytes; unreadable files are reported by their migration."""
    for job in jobs:
        with contextlib.suppress(OSError):
            yield job, job.source.read_bytes()


_worker_project: ProjectIndex | None = None  # set once per worker process by _adopt_project


def _adopt_project(transformed: dict[tuple[str, str], TransformInfo]) -> None:
    """Pool initializer: rebuilds the project index in a worker process."""
    global _worker_project  # noqa: PLW0603 - per-process state is what an initializer sets
    _worker_project = ProjectIndex(MappingProxyType(transformed))


def _migrate_in_worker(job: Job) -> FileResult:
    """:func:`migrate_file` with the index this worker adopted."""
    return migrate_file(job, _worker_project)


def migrate_file(job: Job, project: ProjectIndex | None = None) -> FileResult:
    """Migrates one file and writes it as ``job.mode`` says; any failure becomes a result."""
    try:
        original = job.source.read_bytes()
        migrated = migrate_source(original, job.display, project)
        changed = migrated.source != original  # the bytes decide what is written
        if changed and job.mode is Mode.IN_PLACE:
            _write_in_place(job.source, migrated.source)
        if job.mode is Mode.OUTPUT:
            assert job.target is not None
            job.target.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(job.target, migrated.source, _mode_of(job.source))
        diff = unified_diff(original, migrated.source, job.display) if changed and job.mode is Mode.DIFF else ""
    except SourceError as err:
        return FileResult(job.display, "failed", error=err.message, line=err.line, column=err.column)
    except (UnicodeDecodeError, SyntaxError) as err:  # a bad coding cookie is a SyntaxError
        return FileResult(job.display, "failed", error=f"cannot decode the file: {err}")
    except OSError as err:
        return FileResult(job.display, "failed", error=_os_message(err))
    except RecursionError:
        # LibCST visits trees recursively: a chain of ~500 `a + b + ...` or deeply nested
        # brackets exceeds Python's recursion limit. A limit of the tool, not an engine bug.
        return FileResult(job.display, "failed", error=TOO_DEEP)
    except Exception as err:  # noqa: BLE001 - one engine bug must not stop the other files
        return FileResult(job.display, "failed", error=f"internal error, file left as it was: {err!r}")
    output = str(job.target) if job.target is not None else None
    status = "changed" if changed else "unchanged"
    return FileResult(job.display, status, todos=migrated.todos, diff=diff, output=output)


def _write_in_place(path: Path, data: bytes) -> None:
    """Rewrites ``path`` atomically, refusing files the user marked read-only."""
    mode = _mode_of(path)
    # Checked by hand: os.replace swaps the directory entry, so it would happily
    # replace a read-only file (and root may write anything).
    if not mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH) or not os.access(path, os.W_OK):
        raise PermissionError(errno.EACCES, "the file is read-only; not rewritten")
    write_atomic(path, data, mode)


def _mode_of(path: Path) -> int:
    """The permission bits of ``path``."""
    return stat.S_IMODE(path.stat().st_mode)


def write_atomic(path: Path, data: bytes, mode: int) -> None:
    """Writes ``data`` to ``path`` so that readers see the old file or the new one, never half.

    The bytes go to a temporary file in the same folder (same file system, so
    ``os.replace`` is atomic), are fsynced, get ``mode``, then replace ``path``. On any
    failure the temporary file is removed and ``path`` is as it was.
    """
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, mode)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    """Makes the rename durable; a no-op where folders cannot be opened (Windows)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _os_message(err: OSError) -> str:
    """``strerror`` without the path (messages name the file themselves), or the text."""
    return err.strerror or str(err)


# --- output -----------------------------------------------------------------------------


def decode(data: bytes) -> str:
    """Decodes Python source the way the interpreter does: BOM, then PEP 263 cookie, then UTF-8."""
    encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    return data.decode(encoding)


def unified_diff(before: bytes, after: bytes, path: str) -> str:
    """A ``git apply``-able unified diff; line endings kept, missing final newlines marked."""
    old = io.StringIO(decode(before), newline="").readlines()  # newline="": keep \r\n as is
    new = io.StringIO(decode(after), newline="").readlines()
    lines = difflib.unified_diff(old, new, fromfile=f"a/{path}", tofile=f"b/{path}")
    return "".join(line if line.endswith("\n") else f"{line}\n\\ No newline at end of file\n" for line in lines)


def report(results: Sequence[FileResult], mode: Mode) -> dict[str, Any]:
    """The ``--report`` JSON: every file with its status, every TODO, and the counts."""
    files = [_file_entry(result) for result in results]
    todos = [
        {"file": result.output or result.path, "line": t.line, "construct": t.construct, "reason": t.reason}
        for result in results
        for t in result.todos
    ]
    summary = Summary.of(results)
    counts = {name: getattr(summary, name) for name in Summary.__dataclass_fields__}
    return {"mode": mode.value, "files": files, "todos": todos, "summary": counts}


def _file_entry(result: FileResult) -> dict[str, Any]:
    """One ``files`` entry of the report."""
    entry: dict[str, Any] = {"path": result.path, "status": result.status, "error": result.error}
    if result.line is not None:
        entry.update(line=result.line, column=result.column)
    if result.output is not None:
        entry["output"] = result.output
    return entry
