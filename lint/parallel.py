"""``-j N``: parallel linting that gives the same findings, in the same order, as one process.

The call graph spans the whole project, so the run is sharded in three phases
(:func:`lint_sharded`), with the main process as one of the N jobs:

  1. every job parses and indexes its shard of the files and keeps the trees; the workers send
     back a *summary* of each module (names, scopes, imports, base classes: no trees), a few
     percent of what pickling the trees would cost;
  2. the main process runs the project-wide analysis (call graph, traced regions, reach chains)
     over its own modules and the summaries. Names resolve on summaries; a summary is parsed
     again here only when the analysis reads a tree from it (a module that starts traced regions,
     a traced function); the main process's own shard is filled first with the files most likely
     to be read, so this is about 1% of the jax package at ``-j 2``;
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
from flaxify.lint.project import ModuleInfo, Project, release
from flaxify.lint.settings import LintSettings
from flaxify.lint.transforms import LAST_NAMES

# Pickling summaries walks scope chains recursively; deeply nested functions need more than the default stack.
_RECURSION = 20_000
# Below this much source (about 75,000 lines) one process takes about a second, and what stays serial
# (start-up, phase 2, and re-parsing the files with traced code: a quarter to a half of flax, optax or
# haiku, whose code is mostly traced) leaves nothing to gain: benchmarks/results/lint_jobs.md.
MIN_PARALLEL_CHARS = 3_000_000
# The main process's share of phase 1 relative to a worker's (see ``shards``).
LEAD_WEIGHT = 0.9
_SITE_NAMES = "|".join(sorted(LAST_NAMES | CUSTOM_RULE_ATTRS))
# `@jax.jit`, `lax.scan(`, `partial(jax.jit`: text that usually means a transformation site.
_SITES = re.compile(rf"@[\w.]*\b(?:{_SITE_NAMES})\b|\.(?:{_SITE_NAMES})\s*\(|partial\(\s*[\w.]*\b(?:{_SITE_NAMES})\b")

Indexed = list[tuple[int, ModuleInfo]]  # (position in the file list, module)


def _size(item: SourceFile) -> int:
    return len(item.source or "")


def lint_parallel(files: list[SourceFile], settings: LintSettings, jobs: int) -> LintResult:
    """Lints ``files`` as one project with up to ``jobs`` processes; the result equals one process's."""
    if jobs < 2 or len(files) < 2 or sum(_size(f) for f in files) < MIN_PARALLEL_CHARS:
        return lint_sources(files, settings)
    return lint_sharded(files, settings, jobs)


# --- the sharded run --------------------------------------------------------------------------------


class WorkerLost(RuntimeError):
    """A worker died or failed; the caller lints in one process instead."""


def shards(files: Sequence[SourceFile], jobs: int) -> list[list[int]]:
    """``jobs`` lists of file indexes with about equal work; the first is the main process's.

    The main process reads the trees of the files that start traced regions (phase 2); any of them
    in a worker's shard it has to parse a second time. So its shard is filled first with the files
    that spell the most transformation sites (a cheap text count, a guess that only moves work
    around: the findings never depend on it), then every file left goes, largest first, to the
    least loaded shard. The main process's shard is a little smaller (``LEAD_WEIGHT``): it also
    runs phase 2 and the traced rules, and transformation-dense files index slower per byte.
    """
    sizes = [_size(f) + 1 for f in files]
    weights = [LEAD_WEIGHT] + [1.0] * (jobs - 1)
    budget = sum(sizes) * LEAD_WEIGHT / sum(weights)
    scores = [len(_SITES.findall(f.source)) if f.source else 0 for f in files]
    parts: list[list[int]] = [[] for _ in range(jobs)]
    loads = [0] * jobs
    for index in sorted(range(len(files)), key=lambda i: (-scores[i], i)):
        if scores[index] == 0:
            break
        if loads[0] + sizes[index] <= budget:
            parts[0].append(index)
            loads[0] += sizes[index]
    placed = set(parts[0])
    for index in sorted(range(len(files)), key=lambda i: (-sizes[i], i)):
        if index not in placed:
            target = min(range(jobs), key=lambda k: (loads[k] + sizes[index]) / weights[k])
            parts[target].append(index)
            loads[target] += sizes[index]
    return [sorted(part) for part in parts]


def lint_sharded(files: list[SourceFile], settings: LintSettings, jobs: int) -> LintResult:
    """The three-phase run described in the module docstring.

    If a worker dies or fails, or a file cannot be re-parsed here (a deeper stack than in the
    worker), the run starts over in one process: slower, never a different result.
    """
    parts = shards(files, jobs)
    context = multiprocessing.get_context()
    workers: list[_Worker] = []
    try:
        for part in parts[1:]:
            workers.append(_Worker(context, files, part, settings))
        with _deep_stack():
            return _lead(files, settings, parts, workers)
    except RuntimeError:  # WorkerLost, RecursionError, a summary that no longer matches its file
        return lint_sources(files, settings)
    finally:
        for worker in workers:
            worker.close()


def _lead(files: list[SourceFile], settings: LintSettings, parts: list[list[int]],
          workers: list[_Worker]) -> LintResult:
    """The main process's part: phase 1 on its shard, phase 2, its share of phase 3, and the merge."""
    own, errors = _parse_shard(files, parts[0])
    own_blob = pickle.dumps(own, protocol=pickle.HIGHEST_PROTOCOL)  # for phase 3 of the workers
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
