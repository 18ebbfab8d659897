"""``-j N``: lint independent parts of the project in worker processes.

The call graph follows imports, so two modules can only affect each other's
findings when they are connected in the import graph. The import graph is
read with a cheap line scan (no parsing), its connected components are spread
over the workers, and each worker lints its components as whole projects: the
findings are the same as a single-process run. A single tightly connected
package is one component and runs on one worker.
"""

from __future__ import annotations

import re
from concurrent.futures import ProcessPoolExecutor
from typing import Sequence

from flaxify.lint.engine import LintResult, SourceFile, lint_sources
from flaxify.lint.model import Finding
from flaxify.lint.project import module_name
from flaxify.lint.settings import LintSettings

_IMPORT = re.compile(r"^\s*(?:from\s+(\.*[\w.]*)\s+import\b|import\s+([\w.]+(?:\s*,\s*[\w.]+)*))", re.MULTILINE)


def components(files: Sequence[SourceFile]) -> list[list[int]]:
    """Groups of file indexes that import each other, directly or not (union-find)."""
    names = [module_name(f.path) for f in files]
    parent = list(range(len(files)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(a: int, b: int) -> None:
        parent[find(a)] = find(b)

    by_prefix: dict[str, list[int]] = {}
    for index, (name, _) in enumerate(names):
        parts = name.split(".")
        for cut in range(1, len(parts) + 1):
            by_prefix.setdefault(".".join(parts[:cut]), []).append(index)
    for index, item in enumerate(files):
        for target in _imported(item, names[index]):
            for other in by_prefix.get(target, ()):
                union(index, other)
    groups: dict[int, list[int]] = {}
    for index in range(len(files)):
        groups.setdefault(find(index), []).append(index)
    return sorted(groups.values(), key=len, reverse=True)


def _imported(item: SourceFile, name: tuple[str, bool]) -> set[str]:
    """Module names (and their packages) a file imports; relative imports join the whole package."""
    if item.source is None:
        return set()
    module, is_package = name
    package = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()
    for match in _IMPORT.finditer(item.source):
        if match.group(1) is not None:
            target = match.group(1)
            if target.startswith("."):
                level = len(target) - len(target.lstrip("."))
                base = package.split(".")[: max(0, len(package.split(".")) - (level - 1))] if package else []
                found.add(".".join(base) or target.lstrip(".") or module)
                continue
            found.add(target.split(".")[0] if target else module)
        else:
            found.update(part.strip().split(".")[0] for part in match.group(2).split(","))
    return found


def lint_parallel(files: list[SourceFile], settings: LintSettings, jobs: int) -> LintResult:
    groups = components(files)
    if len(groups) == 1:
        return lint_sources(files, settings)
    buckets: list[list[SourceFile]] = [[] for _ in range(min(jobs, len(groups)))]
    sizes = [0] * len(buckets)
    for group in groups:  # largest first, onto the least loaded worker
        target = sizes.index(min(sizes))
        buckets[target].extend(files[i] for i in group)
        sizes[target] += sum(len(files[i].source or "") for i in group)
    with ProcessPoolExecutor(max_workers=len(buckets)) as pool:
        results = list(pool.map(lint_sources, buckets, [settings] * len(buckets)))
    findings: list[Finding] = sorted((f for r in results for f in r.findings), key=Finding.sort_key)
    failed = sorted(p for r in results for p in r.failed)
    return LintResult(findings, failed, len(files))
