"""Speed of `flaxify migrate` against the floor of a bare LibCST parse + code generation of the same files.

Rerun: `.venv/bin/python benchmarks/bench_migrate.py [--repeat 3] [--sample 24]`
(writes benchmarks/results/migrate_speed.{json,md}; ~10-20 minutes on a busy 2-core machine).

Corpus: the installed dm-haiku, flax and optax sources plus fixtures/ (every `.py`).
All timings are Python's `time.perf_counter` in one process, tool and floor measured
side by side in each round (floor, tool, floor, tool, ...), medians over `--repeat`
rounds, so the load of a shared machine hits both alike; the load average is recorded.

Measured:
- floor: `libcst.parse_module(src).code` per file (what any LibCST codemod must pay);
- migrate: `flaxify.migrate.migrate_source` per file, with the project index the CLI builds;
- the skip path: files without `haiku` against just reading them;
- the CLI end to end, `migrate --check` with `-j 1` and `-j 2` (process start included);
- a cProfile of the Haiku files, grouped into parse / scope analysis / visiting / codegen, and
  the time of each pass of the pipeline.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime
import importlib.metadata
import json
import os
import platform
import pstats
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import libcst as cst

from flaxify.migrate import migrate_source
from flaxify.migrate.project import ProjectIndex, index_sources

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
FLAXIFY = str(Path(sys.executable).with_name("flaxify"))
PACKAGES = ("haiku", "flax", "optax")
VERSIONS = ("flaxify", "libcst", "jax", "flax", "dm-haiku", "optax")
GOAL_FLOOR_RATIO = 2.0


def environment() -> dict[str, Any]:
    """Date, machine, load and versions, recorded with every result."""
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} CPUs, {platform.platform()}",
        "load_average_at_start": os.getloadavg(),
        "python": platform.python_version(),
        "versions": {name: importlib.metadata.version(name) for name in VERSIONS},
    }


def corpus_roots() -> list[Path]:
    """The installed packages' folders and the fixtures."""
    import jax

    site = Path(jax.__file__).resolve().parent.parent
    return [site / name for name in PACKAGES] + [ROOT / "fixtures"]


def corpus(roots: list[Path]) -> dict[Path, bytes]:
    """Every `*.py` under ``roots`` with its bytes, sorted by path."""
    files = sorted(path for root in roots for path in root.rglob("*.py") if path.is_file())
    return {path: path.read_bytes() for path in files}


def lines_of(sources: list[bytes]) -> int:
    """Newline count, the usual `wc -l` measure."""
    return sum(source.count(b"\n") for source in sources)


def timed(fn: Callable[[], object]) -> float:
    """Seconds one call of ``fn`` takes."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def floor(sources: list[bytes]) -> None:
    """The bare LibCST round trip every codemod pays at least once per file."""
    for source in sources:
        cst.parse_module(source).code  # noqa: B018 - generating the code is the point


def tool(items: list[tuple[Path, bytes]], project: ProjectIndex) -> None:
    """What `flaxify migrate` does per file after discovery (read bytes in, bytes out)."""
    for path, source in items:
        migrate_source(source, str(path), project)


def side_by_side(pairs: dict[str, Callable[[], object]], repeat: int) -> dict[str, dict[str, float]]:
    """Runs every callable once per round, interleaved; median, min and max seconds of each."""
    samples: dict[str, list[float]] = {name: [] for name in pairs}
    for _ in range(repeat):
        for name, fn in pairs.items():
            samples[name].append(timed(fn))
    return {name: {"median": statistics.median(s), "min": min(s), "max": max(s)} for name, s in samples.items()}


def cli_seconds(paths: list[Path], jobs: int) -> float:
    """Wall seconds of one `flaxify migrate --check -j N` process over ``paths`` (writes nothing)."""
    start = time.perf_counter()
    subprocess.run([FLAXIFY, "migrate", "--check", "-j", str(jobs), *map(str, paths)], capture_output=True, check=False)
    return time.perf_counter() - start


# (file suffix, function) whose cumulative time is one bucket; the rest is the passes' own visiting.
BUCKETS = {
    "parse (libcst.parse_module)": ("_parser/entrypoints.py", "parse_module"),
    "tree copies (MetadataWrapper deep_clone)": ("_nodes/base.py", "deep_clone"),
    "scope analysis (Scope/ExpressionContext providers)": ("metadata/wrapper.py", "_resolve_impl"),
    "code generation (Module.code)": ("_nodes/module.py", "code_for_node"),
}


def profile(items: list[tuple[Path, bytes]], project: ProjectIndex) -> dict[str, Any]:
    """cProfile of migrating ``items``: time by what it is spent on, top functions, time per pass."""
    passes = _time_passes()
    profiler = cProfile.Profile()
    profiler.enable()
    tool(items, project)
    profiler.disable()
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    cumulative = {(Path(f).parent.name + "/" + Path(f).name, fn): row[3] for (f, _, fn), row in stats.items()}
    total = max(row[3] for (_, _, fn), row in stats.items() if fn == "migrate_source")
    buckets = {name: sum(t for (file, fn), t in cumulative.items() if (file, fn) == key) for name, key in BUCKETS.items()}
    buckets["visiting and rebuilding trees in the passes (the rest)"] = total - sum(buckets.values())
    top = sorted(stats.items(), key=lambda item: item[1][2], reverse=True)
    return {
        "files": len(items),
        "bytes": sum(len(source) for _, source in items),
        "total_s": round(total, 2),
        "share_by_bucket": {name: round(t / total, 3) for name, t in buckets.items()},
        "top_self_time": [
            {"function": f"{Path(f).parent.name}/{Path(f).name}:{line}:{fn}", "self_s": round(row[2], 2),
             "calls": row[1]}
            for (f, line, fn), row in top[:15]
        ],
        "passes_s": {name: round(seconds, 3) for name, seconds in passes.items()},
    }


def _time_passes() -> dict[str, float]:
    """Wraps each pipeline pass's ``transform_module`` with a timer (benchmark process only).

    Returns the dict the wrappers fill. If the engine no longer has a ``PIPELINE`` the
    breakdown is simply empty: the whole-file numbers above do not depend on it.
    """
    from flaxify.migrate import engine

    spent: dict[str, float] = {}
    for command in getattr(engine, "PIPELINE", ()):
        original = command.transform_module

        def wrapper(self: Any, tree: cst.Module, _original: Any = original, _name: str = command.__name__) -> Any:
            start = time.perf_counter()
            try:
                return _original(self, tree)
            finally:
                spent[_name] = spent.get(_name, 0.0) + time.perf_counter() - start

        command.transform_module = wrapper  # type: ignore[method-assign]
    tidy = getattr(engine, "tidy_imports", None)
    if tidy is not None:  # the imports step after the passes (migrate/imports.py)

        def tidy_wrapper(tree: cst.Module, context: Any, _tidy: Any = tidy) -> Any:
            start = time.perf_counter()
            try:
                return _tidy(tree, context)
            finally:
                spent["tidy_imports (add, then remove unused)"] = (
                    spent.get("tidy_imports (add, then remove unused)", 0.0) + time.perf_counter() - start
                )

        engine.tidy_imports = tidy_wrapper  # type: ignore[attr-defined]
    return spent


def per_file(items: list[tuple[Path, bytes]], project: ProjectIndex) -> list[dict[str, Any]]:
    """Floor and migrate seconds of each file, measured back to back (for totals and the scaling plot)."""
    rows = []
    for path, source in items:
        item = [(path, source)]
        rows.append({
            "path": str(path), "lines": source.count(b"\n"), "bytes": len(source),
            "floor": timed(lambda item=item: floor([s for _, s in item])),
            "migrate": timed(lambda item=item: tool(item, project)),
        })
    return rows


def sample(items: list[tuple[Path, bytes]], count: int) -> list[tuple[Path, bytes]]:
    """``count`` files spread evenly over the size range of ``items`` (small to large)."""
    by_size = sorted(items, key=lambda item: len(item[1]))
    step = max(1, len(by_size) // max(count, 1))
    return by_size[::step][:count]


def measure(repeat: int, sample_size: int, roots: list[Path]) -> dict[str, Any]:
    """Every number of the result file."""
    files = corpus(roots)
    project = index_sources(files.items())
    items = list(files.items())
    uses_haiku = {p for p, s in items if b"haiku" in s or project.imported_by(s)}
    haiku = [(p, s) for p, s in items if p in uses_haiku]
    plain = [(p, s) for p, s in items if p not in uses_haiku]
    few = sample(haiku, sample_size)
    result: dict[str, Any] = {
        "corpus": {
            "roots": [str(r) for r in roots],
            "files": len(items), "lines": lines_of([s for _, s in items]), "bytes": sum(len(s) for _, s in items),
            "haiku_files": len(haiku), "haiku_lines": lines_of([s for _, s in haiku]),
            "plain_files": len(plain), "plain_lines": lines_of([s for _, s in plain]),
            "sample_files": len(few), "sample_lines": lines_of([s for _, s in few]),
        }
    }
    # Every Haiku file once (minutes), then a size-spread sample `repeat` times for the medians.
    result["per_file"] = per_file(haiku, project)
    result["haiku_files"] = {
        name: {"median": sum(row[name] for row in result["per_file"])} for name in ("floor", "migrate")
    }
    result["haiku_sample"] = side_by_side(
        {"floor": lambda: floor([s for _, s in few]), "migrate": lambda: tool(few, project)}, repeat
    )
    result["plain_files"] = side_by_side(
        {"read": lambda: [p.read_bytes() for p, _ in plain], "floor": lambda: floor([s for _, s in plain]),
         "migrate": lambda: tool([(p, p.read_bytes()) for p, _ in plain], project)},
        repeat,
    )
    result["cli_check"] = cli_rounds([p for p, _ in few], repeat)
    result["profile"] = profile(sample(haiku, 12), project)
    result["ratios"] = ratios(result)
    return result


def cli_rounds(paths: list[Path], repeat: int) -> dict[str, dict[str, float]]:
    """`migrate --check -j 1` and `-j 2` over ``paths``, interleaved, ``repeat`` rounds."""
    samples: dict[str, list[float]] = {"j1": [], "j2": []}
    for _ in range(repeat):
        for jobs in (1, 2):
            samples[f"j{jobs}"].append(cli_seconds(paths, jobs))
    return {name: {"median": statistics.median(s), "min": min(s), "max": max(s)} for name, s in samples.items()}


def ratios(result: dict[str, Any]) -> dict[str, float]:
    """The goal ratios from the medians."""
    corpus_info, haiku, plain, cli = result["corpus"], result["haiku_files"], result["plain_files"], result["cli_check"]
    few = result["haiku_sample"]
    whole_tool = haiku["migrate"]["median"] + plain["migrate"]["median"]
    whole_floor = haiku["floor"]["median"] + plain["floor"]["median"]
    return {
        "haiku_files_tool_over_floor": haiku["migrate"]["median"] / haiku["floor"]["median"],
        "haiku_sample_tool_over_floor": few["migrate"]["median"] / few["floor"]["median"],
        "whole_corpus_tool_over_floor": whole_tool / whole_floor,
        "plain_files_tool_over_read": plain["migrate"]["median"] / plain["read"]["median"],
        "plain_files_tool_over_floor": plain["migrate"]["median"] / plain["floor"]["median"],
        "cli_j1_over_j2": cli["j1"]["median"] / cli["j2"]["median"],
        "haiku_lines_per_s": corpus_info["haiku_lines"] / haiku["migrate"]["median"],
        "haiku_files_per_s": corpus_info["haiku_files"] / haiku["migrate"]["median"],
        "floor_lines_per_s": corpus_info["haiku_lines"] / haiku["floor"]["median"],
        "whole_corpus_lines_per_s": corpus_info["lines"] / whole_tool,
        "whole_corpus_files_per_s": corpus_info["files"] / whole_tool,
        "plain_lines_per_s": corpus_info["plain_lines"] / plain["migrate"]["median"],
    }


def markdown(result: dict[str, Any]) -> str:
    """The committed summary: numbers, goals met or missed and why, profile findings."""
    env, c, r, h, p, cli = (result[k] for k in ("environment", "corpus", "ratios", "haiku_files", "plain_files",
                                                "cli_check"))
    prof = result["profile"]
    met = "met" if r["haiku_files_tool_over_floor"] <= GOAL_FLOOR_RATIO else "MISSED"
    lines = [
        "# `flaxify migrate` speed",
        "",
        f"{env['date']} on {env['machine']}; load average {env['load_average_at_start']} at start, "
        f"{env['load_average_at_end']} at end (a 2-core machine shared with other work: read ratios, not seconds); "
        f"Python {env['python']}; " + ", ".join(f"{k} {v}" for k, v in env["versions"].items()) + ".",
        f"Rerun: `.venv/bin/python benchmarks/bench_migrate.py --repeat {result['repeat']} --sample {c['sample_files']}`. Medians of "
        f"{result['repeat']} interleaved rounds (tool and floor side by side in each round).",
        "",
        f"Corpus: installed haiku, flax, optax and fixtures/: {c['files']} files, {c['lines']:,} lines, "
        f"{c['bytes'] / 2**20:.1f} MB; {c['haiku_files']} files ({c['haiku_lines']:,} lines) use Haiku, "
        f"{c['plain_files']} ({c['plain_lines']:,} lines) do not.",
        "",
        "| measure | floor (parse + codegen) | migrate | ratio | goal |",
        "| --- | --- | --- | --- | --- |",
        f"| all Haiku files, single process, one round | {h['floor']['median']:.2f} s | {h['migrate']['median']:.2f} s | "
        f"**{r['haiku_files_tool_over_floor']:.1f}x** | within 2x: **{met}** |",
        f"| {c['sample_files']} Haiku files spread by size, median of {result['repeat']} | "
        f"{result['haiku_sample']['floor']['median']:.2f} s | {result['haiku_sample']['migrate']['median']:.2f} s | "
        f"**{r['haiku_sample_tool_over_floor']:.1f}x** | within 2x |",
        f"| whole corpus, single process | {h['floor']['median'] + p['floor']['median']:.2f} s | "
        f"{h['migrate']['median'] + p['migrate']['median']:.2f} s | {r['whole_corpus_tool_over_floor']:.2f}x | |",
        f"| files without Haiku (skip path) | {p['floor']['median']:.2f} s (read only: {p['read']['median']:.3f} s) | "
        f"{p['migrate']['median']:.3f} s | {r['plain_files_tool_over_read']:.2f}x of reading, "
        f"{r['plain_files_tool_over_floor']:.3f}x of the floor | skipped cheaply |",
        f"| CLI `migrate --check` on the {c['sample_files']} sampled files, -j 1 vs -j 2 | | {cli['j1']['median']:.1f} s vs {cli['j2']['median']:.1f} s | "
        f"**{r['cli_j1_over_j2']:.2f}x** faster with -j 2 | close to 2x |",
        "",
        f"Throughput: Haiku files {r['haiku_lines_per_s']:,.0f} lines/s, {r['haiku_files_per_s']:.2f} files/s "
        f"(floor {r['floor_lines_per_s']:,.0f} lines/s); whole corpus {r['whole_corpus_lines_per_s']:,.0f} lines/s, "
        f"{r['whole_corpus_files_per_s']:.1f} files/s; files without Haiku {r['plain_lines_per_s']:,.0f} lines/s.",
        "",
        f"## Where the time goes (cProfile over {prof['files']} Haiku files of all sizes, "
        f"{prof['bytes'] / 1024:.0f} KB, {prof['total_s']} s with the profiler on)",
        "",
        "| cumulative time in | share |",
        "| --- | --- |",
        *[f"| {group} | {share:.0%} |" for group, share in prof["share_by_bucket"].items()],
        "",
        "| pass (each: a full visit; a deep copy only if the tree shares a node; the scope analysis once asked) | seconds | share |",
        "| --- | --- | --- |",
        *[f"| {name} | {seconds:.2f} | {seconds / max(sum(prof['passes_s'].values()), 1e-9):.0%} |"
          for name, seconds in prof["passes_s"].items()],
        "",
        "Top self time:",
        "",
        *[f"- `{row['function']}` {row['self_s']} s ({row['calls']} calls)" for row in prof["top_self_time"]],
        "",
        "## Findings",
        "",
        *result.get("findings", []),
    ]
    return "\n".join(lines).rstrip() + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--roots", type=Path, nargs="*", help="folders to use instead of the default corpus")
    parser.add_argument("--out", default="migrate_speed", help="results file stem")
    parser.add_argument("--sample", type=int, default=24, help="Haiku files timed --repeat times and run by the CLI")
    parser.add_argument("--findings", type=Path, default=RESULTS / "migrate_findings.md",
                        help="hand-written analysis appended to the summary, if the file exists")
    parser.add_argument("--render-only", action="store_true", help="rewrite the .md from the stored .json")
    options = parser.parse_args()
    if options.render_only:
        result = json.loads((RESULTS / f"{options.out}.json").read_text(encoding="utf-8"))
        result["findings"] = options.findings.read_text(encoding="utf-8").splitlines() if options.findings.exists() else []
        (RESULTS / f"{options.out}.md").write_text(markdown(result), encoding="utf-8")
        return 0
    env = environment()
    result = measure(options.repeat, options.sample, options.roots or corpus_roots())
    env["load_average_at_end"] = os.getloadavg()
    result.update(environment=env, repeat=options.repeat)
    if options.findings.exists():
        result["findings"] = options.findings.read_text(encoding="utf-8").splitlines()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{options.out}.json").write_text(json.dumps(result, indent=1, default=str) + "\n", encoding="utf-8")
    (RESULTS / f"{options.out}.md").write_text(markdown(result), encoding="utf-8")
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
