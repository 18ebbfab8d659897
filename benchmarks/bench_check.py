"""Wall time of `flaxify check` on each zoo model, split into import, compile and compare.

Rerun: `.venv/bin/python benchmarks/bench_check.py [--repeat 2] [--devices cpu]`
(writes benchmarks/results/check_speed.{json,md}).

Each measurement runs in a fresh Python process (imports and compiles are cold, as in
CI), for each zoo case in fixtures/zoo/:

- check: import jax/haiku/flax, import both models (`resolve_ref`), then `compare()`
  with the CLI's defaults. The compile share is what `jax.monitoring` reports for
  tracing, lowering and XLA compilation during `compare()`; the rest of `compare()` is
  running the compiled code plus the checker's own Python (mapping, diffs, report).
- baseline: the same imports, then what running the two models costs anyway: each
  model's `init` and each method's forward pass, jitted, compiled and run once.

- check_core: the same `compare()` without initializer statistics and probe cases.

Checker overhead = (compare() seconds - baseline compile-and-run seconds) / baseline.
Medians over `--repeat` runs; the machine load is recorded.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
ZOO = ROOT / "fixtures" / "zoo"
RESULTS = ROOT / "benchmarks" / "results"
VERSIONS = ("flaxify", "jax", "jaxlib", "flax", "dm-haiku")
COMPILE_EVENTS = ("jaxpr_trace_duration", "jaxpr_to_mlir_module_duration", "backend_compile_duration")
GOAL_OVERHEAD = 0.20


def environment() -> dict[str, Any]:
    """Date, machine, load and versions, recorded with every result."""
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} CPUs, {platform.platform()}",
        "load_average_at_start": os.getloadavg(),
        "python": platform.python_version(),
        "versions": {name: importlib.metadata.version(name) for name in VERSIONS},
    }


# --- child process side -------------------------------------------------------------------


def child(mode: str, case_dir: Path, devices: str) -> dict[str, Any]:
    """One cold measurement; runs in its own process (see :func:`measure`)."""
    start = time.perf_counter()
    import flax.linen  # noqa: F401 - the import is what is timed
    import haiku  # noqa: F401
    import jax

    frameworks = time.perf_counter() - start
    from flaxify.equivalence import parse_spec
    from flaxify.equivalence.refs import resolve_ref

    case = json.loads((case_dir / "case.json").read_text(encoding="utf-8"))
    start = time.perf_counter()
    hk_obj, fx_obj = resolve_ref(str(case_dir / case["haiku"])), resolve_ref(str(case_dir / case["flax"]))
    models = time.perf_counter() - start
    specs = case["inputs"]
    inputs = (
        {m: [parse_spec(s, salt=i) for i, s in enumerate(v)] for m, v in specs.items()}
        if isinstance(specs, dict)
        else [parse_spec(s, salt=i) for i, s in enumerate(specs)]
    )
    compile_seconds = [0.0]

    def listen(event: str, seconds: float, **_: Any) -> None:
        if event.rsplit("/", 1)[-1] in COMPILE_EVENTS:
            compile_seconds[0] += seconds

    jax.monitoring.register_event_duration_secs_listener(listen)
    start = time.perf_counter()
    if mode in ("check", "check_core"):
        outcome = _check(hk_obj, fx_obj, inputs, case["kwargs"], devices, full=mode == "check")
    else:
        outcome = _baseline(hk_obj, fx_obj, inputs, case["kwargs"])
    work = time.perf_counter() - start
    return {"frameworks_import": frameworks, "models_import": models, "work": work,
            "compile": compile_seconds[0], **outcome}


def _check(hk_obj: Any, fx_obj: Any, inputs: Any, kwargs: dict[str, Any], devices: str, full: bool) -> dict[str, Any]:
    """The comparison `flaxify check` runs, with its defaults; or (``full=False``) without the
    initializer statistics and probe cases, to show what those cost."""
    from flaxify.equivalence import compare

    extra = {} if full else {"init_seeds": 0, "run_probes": False}
    report = compare(hk_obj, fx_obj, inputs, kwargs=kwargs, devices=devices, **extra)
    return {"equivalent": bool(report.equivalent)}


def _baseline(hk_obj: Any, fx_obj: Any, inputs: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Each model's init and every method's forward pass, jitted, compiled and run once."""
    import jax

    from flaxify.equivalence.haiku_side import as_haiku_model

    rng = jax.random.PRNGKey(0)
    hk_model = as_haiku_model(hk_obj)
    calls = inputs if isinstance(inputs, dict) else {"__call__": inputs}
    first = next(iter(calls))
    kw = {name: (kwargs.get(name, kwargs) if isinstance(kwargs.get(name), dict) else kwargs) for name in calls}
    # Initialise in training mode where there is one: Haiku creates BatchNorm's EMA state only then.
    init_kw = {**kw[first], "is_training": True} if "is_training" in kw[first] else kw[first]
    params, state = jax.jit(lambda r, *xs: hk_model.init(r, *xs, **init_kw))(rng, *calls[first])
    jax.block_until_ready(params)
    for name, xs in calls.items():
        apply = hk_model.methods[name]
        out = jax.jit(lambda p, s, *a, _apply=apply, _kw=kw[name]: _apply(p, s, rng, *a, **_kw))(params, state, *xs)
        jax.block_until_ready(out)
    rngs = {"params": rng, "dropout": rng}
    # Flax creates every parameter through __call__ (as Haiku's multi_transform template does).
    variables = jax.jit(lambda r, *xs: fx_obj.init(r, *xs, **init_kw))(rngs, *calls[first])
    jax.block_until_ready(variables)
    for name, xs in calls.items():
        method = None if name == "__call__" else name
        out = jax.jit(
            lambda v, *a, _m=method, _kw=kw[name]: fx_obj.apply(v, *a, method=_m, rngs={"dropout": rng}, **_kw)
        )(variables, *xs)
        jax.block_until_ready(out)
    return {}


# --- parent side ----------------------------------------------------------------------------


def run_child(mode: str, case_dir: Path, devices: str) -> dict[str, Any]:
    """One fresh process; its whole wall time too (interpreter start included)."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, __file__, "--child", mode, str(case_dir), "--devices", devices],
        capture_output=True, text=True, env={**os.environ, "JAX_PLATFORMS": devices if devices != "all" else ""},
    )
    wall = time.perf_counter() - start
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"}
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "process": wall}


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median of every numeric field over runs without an error; the first error otherwise."""
    good = [run for run in runs if "error" not in run]
    if not good:
        return {"error": runs[0]["error"]}
    keys = [k for k, v in good[0].items() if isinstance(v, float)]
    merged: dict[str, Any] = {k: statistics.median(run[k] for run in good) for k in keys}
    merged.update({k: v for k, v in good[0].items() if not isinstance(v, float)})
    return merged


def measure(repeat: int, devices: str, cases: list[Path]) -> list[dict[str, Any]]:
    """Check and baseline for every case, interleaved round by round."""
    rows = []
    for case_dir in cases:
        runs: dict[str, list[dict[str, Any]]] = {"check": [], "check_core": [], "baseline": []}
        for _ in range(repeat):
            for mode in runs:
                runs[mode].append(run_child(mode, case_dir, devices))
        check, core, base = (median_of(runs[mode]) for mode in ("check", "check_core", "baseline"))
        row: dict[str, Any] = {"case": case_dir.name, "check": check, "check_core": core, "baseline": base}
        if "error" not in check and "error" not in base:
            row["overhead"] = (check["work"] - base["work"]) / base["work"]
        if "error" not in core and "error" not in base:
            row["overhead_core"] = (core["work"] - base["work"]) / base["work"]
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def markdown(result: dict[str, Any]) -> str:
    """The committed summary."""
    env, rows = result["environment"], result["cases"]
    lines = [
        "# `flaxify check` speed on the model zoo",
        "",
        f"{env['date']} on {env['machine']}; load average {env['load_average_at_start']} at start, "
        f"{env['load_average_at_end']} at end (shared 2-core machine: read ratios, not seconds); "
        f"Python {env['python']}; " + ", ".join(f"{k} {v}" for k, v in env["versions"].items()) + ".",
        f"Rerun: `.venv/bin/python benchmarks/bench_check.py --repeat {result['repeat']} --devices "
        f"{result['devices']}`. Medians of {result['repeat']} fresh processes per cell.",
        "",
        "Columns: *import* = jax/haiku/flax + both model files; *compile* = tracing, lowering and XLA "
        "compilation inside `compare()` (jax.monitoring); *compare* = the rest of `compare()` (running "
        "the compiled code, mapping, diffing, the report); *baseline* = compiling and running each "
        "model's init and forward once; *overhead* = (`compare()` − baseline) / baseline (goal < 20%).",
        "",
        "| model | process s | import s | compile s | compare s | baseline s | overhead | goal | "
        "without init stats and probes: compare() s / overhead |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        check, base = row["check"], row["baseline"]
        if "error" in check:
            lines.append(f"| {row['case']} | check failed: {check['error'][:80]} | | | | | | |")
            continue
        imports = check["frameworks_import"] + check["models_import"]
        rest = check["work"] - check["compile"]
        base_text = f"{base['work']:.2f}" if "error" not in base else f"n/a ({base['error'][:60]})"
        over = row.get("overhead")
        verdict = "" if over is None else ("met" if over < GOAL_OVERHEAD else "missed")
        over_text = "" if over is None else f"{over:+.0%}"
        core = row["check_core"]
        core_text = "" if "error" in core else f"{core['work']:.2f}"
        if row.get("overhead_core") is not None:
            core_text += f" / {row['overhead_core']:+.0%}"
        lines.append(
            f"| {row['case']} | {check['process']:.1f} | {imports:.2f} | {check['compile']:.2f} | {rest:.2f} | "
            f"{base_text} | {over_text} | {verdict} | {core_text} |"
        )
    lines += ["", *result.get("findings", [])]
    return "\n".join(lines).rstrip() + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--devices", default="cpu", choices=("cpu", "gpu", "all"))
    parser.add_argument("--case", action="append", help="zoo case name (default: all)")
    parser.add_argument("--render-only", action="store_true", help="rewrite the .md from the stored .json")
    parser.add_argument("--merge", action="store_true", help="with --case: replace only those rows of the stored result")
    parser.add_argument("--child", nargs=2, metavar=("MODE", "CASE_DIR"), help=argparse.SUPPRESS)
    parser.add_argument("--findings", type=Path, default=RESULTS / "check_findings.md")
    options = parser.parse_args()
    if options.child:
        print(json.dumps(child(options.child[0], Path(options.child[1]), options.devices)))
        return 0
    if options.render_only:
        result = json.loads((RESULTS / "check_speed.json").read_text(encoding="utf-8"))
        result["findings"] = options.findings.read_text(encoding="utf-8").splitlines() if options.findings.exists() else []
        (RESULTS / "check_speed.md").write_text(markdown(result), encoding="utf-8")
        return 0
    cases = sorted(p.parent for p in ZOO.glob("*/case.json"))
    if options.case:
        cases = [c for c in cases if c.name in options.case]
    env = environment()
    rows = measure(options.repeat, options.devices, cases)
    env["load_average_at_end"] = os.getloadavg()
    result = {"environment": env, "repeat": options.repeat, "devices": options.devices, "cases": rows}
    if options.merge:  # rerun some cases, keep the stored rows of the others
        stored = json.loads((RESULTS / "check_speed.json").read_text(encoding="utf-8"))
        fresh = {row["case"] for row in rows}
        result = {**stored, "cases": sorted([*[r for r in stored["cases"] if r["case"] not in fresh], *rows],
                                            key=lambda row: row["case"])}
        result.setdefault("reruns", []).append({"cases": sorted(fresh), "environment": env})
    if options.findings.exists():
        result["findings"] = options.findings.read_text(encoding="utf-8").splitlines()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "check_speed.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    (RESULTS / "check_speed.md").write_text(markdown(result), encoding="utf-8")
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
