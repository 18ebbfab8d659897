"""``-j N``: parallel linting that gives the same findings as one process.

Two levels:

* Parts of the project that do not import each other (connected components of the import
  graph, read with a cheap line scan) cannot affect each other's findings; they are linted
  whole in separate worker processes.
* A large component (one package) is parsed and indexed in N workers, which send the indexed
  modules back pickled; the main process then runs the project-wide analysis and the rules.
  Unpickling costs less than parsing plus indexing, so this part scales only partly.
"""

from __future__ import annotations

import gc
import pickle
import re
import sys
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor

from flaxify.lint.engine import (
    LintResult,
    SourceFile,
    lint_modules,
    lint_sources,
    parse,
)
from flaxify.lint.model import Finding
from flaxify.lint.project import ModuleInfo, module_name
from flaxify.lint.rules.float64_without_x64 import X64_MARKER
from flaxify.lint.settings import LintSettings

_IMPORT = re.compile(r"^\s*(?:from\s+(\.*[\w.]*)\s+import\b|import\s+([\w.]+(?:\s*,\s*[\w.]+)*))", re.MULTILINE)
# Pickling deep expression trees (long `a + b + c ...` chains) needs more than the default stack.
_RECURSION = 20_000


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


def _parse_chunk(files: list[SourceFile]) -> tuple[bytes, list[Finding]]:
    """Worker: parse and index, return the modules pickled."""
    sys.setrecursionlimit(_RECURSION)
    gc.disable()
    modules, errors = parse(files)
    return pickle.dumps(modules, protocol=pickle.HIGHEST_PROTOCOL), errors


def _lint_parsed_in_parallel(files: list[SourceFile], settings: LintSettings, jobs: int,
                             pool: ProcessPoolExecutor) -> LintResult:
    chunks: list[list[SourceFile]] = [files[i::jobs] for i in range(jobs)]
    sys.setrecursionlimit(max(sys.getrecursionlimit(), _RECURSION))
    enabled = gc.isenabled()
    gc.disable()
    try:
        modules: list[ModuleInfo] = []
        errors: list[Finding] = []
        for blob, chunk_errors in pool.map(_parse_chunk, chunks):
            loaded: list[ModuleInfo] = pickle.loads(blob)
            for module in loaded:
                module.by_node = {id(fn.node): fn for fn in module.all_functions}
            modules.extend(loaded)
            errors.extend(chunk_errors)
        order = {f.display: i for i, f in enumerate(files)}
        modules.sort(key=lambda m: order.get(m.display, 0))  # same project order as one process
        return lint_modules(modules, errors, settings, len(files))
    finally:
        if enabled:
            gc.enable()


# Below this many workers, pickling the indexed modules back costs more than it saves.
MIN_PARSE_WORKERS = 3


def lint_parallel(files: list[SourceFile], settings: LintSettings, jobs: int) -> LintResult:
    groups = components(files)
    if len(groups) == 1 and jobs < MIN_PARSE_WORKERS:
        return lint_sources(files, settings)
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        if len(groups) == 1:
            return _lint_parsed_in_parallel(files, settings, jobs, pool)
        buckets: list[list[SourceFile]] = [[] for _ in range(min(jobs, len(groups)))]
        sizes = [0] * len(buckets)
        for group in groups:  # largest first, onto the least loaded worker
            target = sizes.index(min(sizes))
            buckets[target].extend(files[i] for i in group)
            sizes[target] += sum(len(files[i].source or "") for i in group)
        results = list(pool.map(lint_sources, buckets, [settings] * len(buckets)))
    findings: list[Finding] = sorted((f for r in results for f in r.findings), key=Finding.sort_key)
    failed = sorted(p for r in results for p in r.failed)
    return LintResult(findings, failed, len(files), [line for r in results for line in r.internal])
