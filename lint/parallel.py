"""``-j N``: parallel linting that gives the same findings, in the same order, as one process.

Two strategies, picked by the shape of the project:

* Parts of the project that do not import each other (connected components of the import
  graph, read with a cheap line scan) cannot affect each other's findings. When no part is
  bigger than a worker's share, each worker lints whole parts (:func:`_lint_components`).
* Otherwise (one package: the usual case) the run is sharded in three phases
  (:func:`lint_sharded`), with the main process as one of the N jobs:

  1. every job parses and indexes its shard of the files and keeps the trees; the workers send
     back a *summary* of each module (names, scopes, imports, base classes: no trees), a few
     percent of what pickling the trees would cost;
  2. the main process runs the project-wide analysis (call graph, traced regions, reach chains)
     over its own modules and the summaries. Names resolve on summaries; a summary is parsed
     again here only when the analysis reads a tree from it (a traced function, the target of a
     transformation), about a fifth of the files of a large package;
  3. each worker runs the module rules on its files that the main process did not re-parse; the
     main process runs them on the others and runs the traced rules. Raw findings are put back
     in one-process order before the shared dedupe, so the output is byte-identical to ``-j 1``.

Module rules only ask the analysis about their own file's traced functions, and a file the
main process never re-parsed has none, so a worker needs the summaries but not the contexts.
"""

from __future__ import annotations

import gc
import multiprocessing
import pickle
import re
import signal
import sys
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from multiprocessing.connection import Connection
from typing import Any

from flaxify.lint.analysis import CUSTOM_RULE_ATTRS, Analysis, has_seed_sites
from flaxify.lint.engine import (
    DEEP_RECURSION,
    LintResult,
    SourceFile,
    active_rules,
    finish,
    lint_sources,
    module_findings,
    parse,
    traced_findings,
)
from flaxify.lint.model import Finding
from flaxify.lint.project import ModuleInfo, Project, module_name, release
from flaxify.lint.rules.float64_without_x64 import X64_MARKER
from flaxify.lint.settings import LintSettings
from flaxify.lint.transforms import LAST_NAMES

_IMPORT = re.compile(r"^\s*(?:from\s+(\.*[\w.]*)\s+import\b|import\s+([\w.]+(?:\s*,\s*[\w.]+)*))", re.MULTILINE)
# Pickling summaries walks scope chains recursively; deeply nested functions need more than the default stack.
_RECURSION = 20_000
# Below this much source a one-process run takes a fraction of a second: starting workers would not pay.
MIN_PARALLEL_CHARS = 400_000
_SITE_NAMES = "|".join(sorted(LAST_NAMES | CUSTOM_RULE_ATTRS))
# `@jax.jit`, `lax.scan(`, `partial(jax.jit`: text that usually means a transformation site.
_SITES = re.compile(rf"@[\w.]*\b(?:{_SITE_NAMES})\b|\.(?:{_SITE_NAMES})\s*\(|partial\(\s*[\w.]*\b(?:{_SITE_NAMES})\b")

Indexed = list[tuple[int, ModuleInfo]]  # (position in the file list, module)


def components(files: Sequence[SourceFile]) -> list[list[int]]:
    """Groups of file indexes that import each other, directly or not (union-find)."""
    names = [module_name(f.path) for f in files]
    parent = list(range(len(files)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    by_prefix: dict[str, list[int]] = {}
    for index, (name, _) in enumerate(names):
        parts = name.split(".")
        for cut in range(1, len(parts) + 1):
            by_prefix.setdefault(".".join(parts[:cut]), []).append(index)
    for index, item in enumerate(files):
        for target in _imported(item, names[index]):
            for other in by_prefix.get(target, ()):
                parent[find(index)] = find(other)
    # JX211 reads a project-wide fact (x64 enabled anywhere): files that set it and files asking
    # for float64 must be linted together, or -j would differ from one process.
    x64 = [i for i, f in enumerate(files) if f.source is not None and X64_MARKER in f.source.lower()]
    if x64:
        for index, item in enumerate(files):
            if item.source is not None and "float64" in item.source:
                parent[find(index)] = find(x64[0])
        for index in x64[1:]:
            parent[find(index)] = find(x64[0])
    groups: dict[int, list[int]] = {}
    for index in range(len(files)):
        groups.setdefault(find(index), []).append(index)
    return sorted(groups.values(), key=len, reverse=True)


def _imported(item: SourceFile, name: tuple[str, bool]) -> set[str]:
    """Top-level names a file imports; relative imports join the whole package."""
    if item.source is None:
        return set()
    module, is_package = name
    package = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()
    for match in _IMPORT.finditer(item.source):
        if match.group(1) is not None:
            target = match.group(1)
            if target.startswith("."):
                found.add(package.split(".")[0] if package else module)
            else:
                found.add(target.split(".")[0])
        else:
            found.update(part.strip().split(".")[0] for part in match.group(2).split(","))
    return found


def _size(item: SourceFile) -> int:
    return len(item.source or "")


def lint_parallel(files: list[SourceFile], settings: LintSettings, jobs: int) -> LintResult:
    """Lints ``files`` as one project with up to ``jobs`` processes; the result equals one process's."""
    total = sum(_size(f) for f in files)
    if jobs < 2 or len(files) < 2 or total < MIN_PARALLEL_CHARS:
        return lint_sources(files, settings)
    groups = components(files)
    largest = max(sum(_size(files[i]) for i in group) for group in groups)
    if len(groups) > 1 and largest * jobs <= total:
        return _lint_components(files, groups, settings, jobs)
    return lint_sharded(files, settings, jobs)


def _lint_components(files: list[SourceFile], groups: list[list[int]], settings: LintSettings,
                     jobs: int) -> LintResult:
    """Independent parts of the project linted whole, each in one worker (largest first, least loaded)."""
    buckets: list[list[SourceFile]] = [[] for _ in range(min(jobs, len(groups)))]
    sizes = [0] * len(buckets)
    for group in groups:
        target = sizes.index(min(sizes))
        buckets[target].extend(files[i] for i in group)
        sizes[target] += sum(_size(files[i]) for i in group)
    with ProcessPoolExecutor(max_workers=len(buckets)) as pool:
        results = list(pool.map(lint_sources, buckets, [settings] * len(buckets)))
    findings: list[Finding] = sorted((f for r in results for f in r.findings), key=Finding.sort_key)
    failed = sorted(p for r in results for p in r.failed)
    return LintResult(findings, failed, len(files), [line for r in results for line in r.internal])


# --- the sharded run --------------------------------------------------------------------------------


class WorkerLost(RuntimeError):
    """A worker died or failed; the caller lints in one process instead."""


def shards(files: Sequence[SourceFile], jobs: int) -> list[list[int]]:
    """``jobs`` lists of file indexes with about equal source size; the first is the main process's.

    The main process reads the trees of the files that start traced regions (phase 2); any of them
    in a worker's shard it has to parse a second time. So its shard is filled first with the files
    that spell the most transformation sites (a cheap text count, a guess that only moves work
    around: the findings never depend on it), then every file left goes, largest first, to the
    least loaded shard.
    """
    sizes = [_size(f) + 1 for f in files]
    share = sum(sizes) / jobs
    scores = [len(_SITES.findall(f.source)) if f.source else 0 for f in files]
    parts: list[list[int]] = [[] for _ in range(jobs)]
    loads = [0] * jobs
    for index in sorted(range(len(files)), key=lambda i: (-scores[i], i)):
        if scores[index] == 0:
            break
        if loads[0] + sizes[index] <= share:
            parts[0].append(index)
            loads[0] += sizes[index]
    placed = set(parts[0])
    for index in sorted(range(len(files)), key=lambda i: (-sizes[i], i)):
        if index not in placed:
            target = loads.index(min(loads))
            parts[target].append(index)
            loads[target] += sizes[index]
    return [sorted(part) for part in parts]


def lint_sharded(files: list[SourceFile], settings: LintSettings, jobs: int) -> LintResult:
    """The three-phase run described in the module docstring; falls back to one process if a worker fails."""
    parts = shards(files, jobs)
    context = multiprocessing.get_context()
    workers: list[_Worker] = []
    try:
        for part in parts[1:]:
            workers.append(_Worker(context, files, part, settings))
        with _deep_stack():
            return _lead(files, settings, parts, workers)
    except WorkerLost:
        return lint_sources(files, settings)
    finally:
        for worker in workers:
            worker.close()


def _lead(files: list[SourceFile], settings: LintSettings, parts: list[list[int]],
          workers: list[_Worker]) -> LintResult:
    """The main process's part: phase 1 on its shard, phase 2, its share of phase 3, and the merge."""
    own, errors = _parse_shard(files, parts[0])
    blobs: list[bytes] = []
    indexed: Indexed = list(own)
    for worker in workers:  # phase 1 of the workers ran meanwhile
        blob = worker.receive_bytes()
        blobs.append(blob)
        indexed.extend(_load_summaries(blob, files))
        errors.extend(worker.receive())
    indexed.sort(key=lambda pair: pair[0])
    modules = [module for _, module in indexed]
    analysis = Analysis(Project(modules))
    analysis.run()
    for context in analysis.contexts.values():
        context.fn.module.materialize()  # already read while processing it; made explicit for phase 3
    lead = {index for index, module in indexed if module.materialized}
    parsed = {index for index, _ in indexed}
    own_blob = pickle.dumps(own, protocol=pickle.HIGHEST_PROTOCOL)
    for number, (worker, part) in enumerate(zip(workers, parts[1:])):
        others = [own_blob, *(blob for k, blob in enumerate(blobs) if k != number)]
        worker.send((others, [i for i in part if i in parsed and i not in lead]))
    rules = active_rules(settings)
    per_module: dict[int, tuple[list[Finding], list[str]]] = {}
    for index, module in indexed:
        if index in lead:
            raw: list[Finding] = []
            internal: list[str] = []
            module_findings(module, analysis, rules, raw, internal)
            per_module[index] = (raw, internal)
    traced_raw: list[Finding] = []
    traced_internal: list[str] = []
    traced_findings(analysis, rules, traced_raw, traced_internal)
    for worker in workers:
        per_module.update(worker.receive())
    raw_all = [f for index in sorted(per_module) for f in per_module[index][0]] + traced_raw
    internal_all = [line for index in sorted(per_module) for line in per_module[index][1]] + traced_internal
    parse_errors = [finding for _, finding in sorted(errors, key=lambda pair: pair[0])]
    try:
        return finish(modules, raw_all, internal_all, parse_errors, settings, len(files))
    finally:
        release(modules)


def _parse_shard(files: list[SourceFile], part: list[int]) -> tuple[Indexed, list[tuple[int, Finding]]]:
    """Phase 1 on one shard: parse, index, and mark the modules that may start a traced region."""
    indexed: Indexed = []
    errors: list[tuple[int, Finding]] = []
    for index in part:
        modules, failed = parse([files[index]])
        for module in modules:
            module.may_seed = has_seed_sites(module)
            indexed.append((index, module))
        errors.extend((index, finding) for finding in failed)
    return indexed, errors


def _load_summaries(blob: bytes, files: list[SourceFile]) -> Indexed:
    """Unpickles summaries and gives them back their source (never shipped: every process has it)."""
    pairs: Indexed = pickle.loads(blob)
    for index, module in pairs:
        module.source = files[index].source  # type: ignore[assignment]
    return pairs


@contextmanager
def _deep_stack() -> Iterator[None]:
    """The cyclic GC off (millions of long-lived nodes, no garbage cycles) and room for deep trees."""
    enabled = gc.isenabled()
    limit = sys.getrecursionlimit()
    gc.disable()
    sys.setrecursionlimit(max(limit, _RECURSION, DEEP_RECURSION))
    try:
        yield
    finally:
        sys.setrecursionlimit(limit)
        if enabled:
            gc.enable()


class _Worker:
    """One worker process with a pipe; its shard's trees stay in it from phase 1 to phase 3."""

    def __init__(self, context: Any, files: list[SourceFile], part: list[int], settings: LintSettings) -> None:
        self.connection, child = context.Pipe()
        self.process = context.Process(target=_serve, args=(child, files, part, settings), daemon=True)
        self.process.start()
        child.close()

    def receive_bytes(self) -> bytes:
        try:
            data: bytes = self.connection.recv_bytes()
        except (EOFError, OSError) as err:
            raise WorkerLost(f"worker {self.process.pid} exited: {err}") from err
        if data.startswith(_FAILED):
            raise WorkerLost(data[len(_FAILED):].decode(errors="replace"))
        return data

    def receive(self) -> Any:
        return pickle.loads(self.receive_bytes())

    def send(self, message: object) -> None:
        try:
            self.connection.send_bytes(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))
        except (EOFError, OSError) as err:
            raise WorkerLost(f"worker {self.process.pid} exited: {err}") from err

    def close(self) -> None:
        self.connection.close()
        self.process.join(timeout=5)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join()


_FAILED = b"\0flaxify-worker-failed\0"


def _serve(connection: Connection, files: list[SourceFile], part: list[int], settings: LintSettings) -> None:
    """A worker process: :func:`_work`, with failures reported to the main process instead of raised."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's to handle
    # The GC stays off to the end: the process exits right after, and re-enabling it would make
    # the next allocation scan every node of the shard.
    gc.disable()
    sys.setrecursionlimit(max(sys.getrecursionlimit(), _RECURSION, DEEP_RECURSION))
    try:
        _work(connection, files, part, settings)
    except (EOFError, OSError):
        pass  # the main process went away (it fell back, or was interrupted)
    except BaseException as err:  # noqa: BLE001 - reported to the main process, which lints without workers
        try:
            connection.send_bytes(_FAILED + f"{type(err).__name__}: {err}".encode())
        except (EOFError, OSError):
            pass
    finally:
        connection.close()


def _work(connection: Connection, files: list[SourceFile], part: list[int], settings: LintSettings) -> None:
    """Phase 1 on the worker's shard, then the module rules on the files the main process left to it."""
    own, errors = _parse_shard(files, part)
    connection.send_bytes(pickle.dumps(own, protocol=pickle.HIGHEST_PROTOCOL))
    connection.send_bytes(pickle.dumps(errors, protocol=pickle.HIGHEST_PROTOCOL))
    blobs, to_lint = pickle.loads(connection.recv_bytes())
    indexed: Indexed = list(own)
    for blob in blobs:
        indexed.extend(_load_summaries(blob, files))
    indexed.sort(key=lambda pair: pair[0])
    analysis = Analysis(Project([module for _, module in indexed]))  # names only: no contexts here
    rules = active_rules(settings)
    mine = dict(own)
    results: dict[int, tuple[list[Finding], list[str]]] = {}
    for index in to_lint:
        raw: list[Finding] = []
        internal: list[str] = []
        module_findings(mine[index], analysis, rules, raw, internal)
        results[index] = (raw, internal)
    connection.send_bytes(pickle.dumps(results, protocol=pickle.HIGHEST_PROTOCOL))
