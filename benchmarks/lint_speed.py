"""Speed of `flaxify lint`: against bare `ast.parse`, warm cache vs cold, peak memory, pylint.

Rerun: `.venv/bin/python benchmarks/lint_speed.py [--pylint PATH/TO/pylint] [--repeat 3]`
(writes benchmarks/results/lint_speed.{json,md}). `-j N` scaling and the whole-process warm-cache
ratio are measured by benchmarks/lint_jobs.py. pylint is optional: give its path, or have it on
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
    options = parser.parse_args()
    site = site_packages()
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
            "module_speedup": round(module_cold / module_warm, 1)}, "peak_rss_mb_jax": memory,
            "pylint": pylint}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "lint_speed.json").write_text(json.dumps(data, indent=2) + "\n")
    (RESULTS / "lint_speed.md").write_text(render(data))
    print(render(data))
    return 0


def run_pylint(pylint: str | None, root: Path, row: dict) -> dict:  # type: ignore[type-arg]
    if not pylint:
        return {"skipped": "pylint not installed; pass --pylint PATH"}
    start = time.perf_counter()
    subprocess.run([pylint, "--jobs=1", "--score=n", str(root)], capture_output=True)
    seconds = time.perf_counter() - start
    version = subprocess.run([pylint, "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    return {"corpus": "haiku", "version": version, "seconds": round(seconds, 1),
            "lines_per_s": int(row["lines"] / seconds), "flaxify_lines_per_s": row["lines_per_s"]}


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
            f"- `python -m flaxify.lint` (loads only the lint command): cold {cache['module_cold_s']} s, warm "
            f"{cache['module_warm_s']} s: **{cache['module_speedup']}x**.",
            "- the whole `flaxify lint` process, cold and warm, and `-j N` scaling: "
            "[lint_jobs.md](lint_jobs.md) (`benchmarks/lint_jobs.py`).", "",
            "## Peak memory (jax package, single process; target under 500 MB)", "",
            f"{data['peak_rss_mb_jax']} MB", ""]
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
