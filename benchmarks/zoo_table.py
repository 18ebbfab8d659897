"""Generates docs/zoo.md: real Haiku code migrated by flaxify, unaided, and checked.

    python benchmarks/zoo_table.py                  # all rows; writes docs/zoo.md and benchmarks/results/zoo_*.json
    python benchmarks/zoo_table.py --only resnet    # rows whose name contains "resnet" (prints, writes nothing)

One row per model:

- Haiku's own ``hk.nets`` sources, copied from the installed dm-haiku package,
  given the fork edit their comment prescribes (the one edit, defined and
  asserted in tests/test_realworld_haiku_nets.py, imported from there);
- the Haiku side of each section of Flax's Haiku→Linen guide (fixtures/flax_guide);
- the bundled example project (fixtures/example_project, what ``make demo`` runs);
- the issue-5 models of the zoo (fixtures/zoo/issue5_*).

Each source is copied into a temporary folder and migrated with ``flaxify migrate
-o`` (the real CLI, whole folder, so cross-file call sites are rewritten as for a
user). Then ``flaxify.equivalence`` compares the migrated model with the
original: parameter tree one to one, outputs on CPU (and on the GPU when JAX sees
one) in evaluation and, with a mode flag, training. The step-time ratio is the
median time of one jitted training step (gradient of the squared outputs, SGD
update, state threaded) of the migrated model over the original's, same inputs,
same device, interleaved repeats. Nothing is hand-edited; a row that fails says why.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import flax
import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

from flaxify.cli import main as flaxify_main
from flaxify.equivalence import modes, parse_spec
from flaxify.equivalence.haiku_side import as_haiku_model
from flaxify.equivalence.refs import resolve_ref
from flaxify.equivalence.runner import run_comparison

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "zoo.md"
RESULTS = ROOT / "benchmarks" / "results"
NO_GPU = "not measured: no GPU in this session"
DEEP_RESNETS = ("ResNet34", "ResNet50", "ResNet101", "ResNet152", "ResNet200")


def _load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


# The fork edit and the hk.nets cases (class, ctor, input) are defined once, in the test that asserts them.
NETS_TEST = _load(ROOT / "tests" / "test_realworld_haiku_nets.py", "_flaxify_zoo_nets_cases")


@dataclass
class Row:
    """One model: where its Haiku code comes from and how to call it."""

    name: str
    group: str
    source: str  # shown in the table
    files: dict[str, Path]  # copied into the Haiku folder under these names
    haiku: str | Callable[[], Any]  # "model.py:NAME" in the Haiku folder, or a factory
    flax: str  # "model.py:NAME" in the migrated folder
    inputs: Any
    kwargs: dict[str, Any] | None = None
    ctor: dict[str, Any] | None = None
    methods: list[str] | None = None
    fork: bool = False
    probes: bool = True
    result: dict[str, Any] = field(default_factory=dict)


def _nets_rows() -> list[Row]:
    nets = NETS_TEST.installed_nets_dir()
    rows = []
    cases = list(NETS_TEST.CASES)
    # Deeper ResNets: the zoo only (CPU time), one row each, parameter trees from 21M to 65M.
    for cls in DEEP_RESNETS:
        cases.append(NETS_TEST.NetCase("resnet", cls, {"num_classes": 10}, "f32[1,32,32,3]"))
    for case in cases:
        suffix = " v2" if case.ctor.get("resnet_v2") else (" v1" if case.file == "resnet" else "")
        rows.append(
            Row(
                name=f"hk.nets.{case.cls}{suffix}",
                group="Haiku's own hk.nets",
                source=f"haiku/_src/nets/{case.file}.py",
                files={f"{case.file}.py": nets / f"{case.file}.py"},
                haiku=lambda cls=case.cls: getattr(hk.nets, cls),
                flax=f"{case.file}.py:{case.cls}",
                inputs=[case.spec],
                kwargs=case.kwargs,
                ctor=case.ctor,
                fork=True,
                # Probes scale one weight at a time: one model run per conv, too slow for deep ResNets on CPU.
                probes=case.cls not in DEEP_RESNETS,
            )
        )
    return rows


def _guide_rows() -> list[Row]:
    rows = []
    for path in sorted((ROOT / "fixtures" / "flax_guide").glob("*.py")):
        header = json.loads(re.search(r"^# flaxify-check: (\{.*\})$", path.read_text(), re.MULTILINE)[1])
        rows.append(
            Row(
                name=f"guide: {path.stem}",
                group="Flax Haiku→Linen guide",
                source=f"fixtures/flax_guide/{path.name}",
                files={"model.py": path},
                haiku=f"model.py:{header['name']}",
                flax=f"model.py:{header['name']}",
                inputs=header["inputs"],
                kwargs=header.get("kwargs"),
                methods=header.get("methods"),
            )
        )
    return rows


def _project_rows() -> list[Row]:
    project = ROOT / "fixtures" / "example_project"
    return [
        Row(
            name="example project (make demo)",
            group="Example project",
            source="fixtures/example_project/{model,data,train}.py",
            files={p.name: p for p in sorted(project.glob("*.py"))},
            haiku="model.py:net",
            flax="model.py:net",
            inputs=["f32[8,8,8,1]"],
        )
    ]


def _zoo_rows() -> list[Row]:
    rows = []
    for case_file in sorted((ROOT / "fixtures" / "zoo").glob("issue5_*/case.json")):
        case = json.loads(case_file.read_text())
        haiku_file, ref = case["haiku"].split(":")
        rows.append(
            Row(
                name=f"zoo: {case_file.parent.name}",
                group="fixtures/zoo (issue 5)",
                source=f"fixtures/zoo/{case_file.parent.name}/{haiku_file}",
                files={"model.py": case_file.parent / haiku_file},
                haiku=f"model.py:{ref}",
                flax=f"model.py:{ref}",
                inputs=case["inputs"],
                kwargs=case["kwargs"] or None,
            )
        )
    return rows


def _specs(inputs: Any) -> Any:
    if isinstance(inputs, dict):
        return {m: [parse_spec(s, salt=i) for i, s in enumerate(specs)] for m, specs in inputs.items()}
    return [parse_spec(s, salt=i) for i, s in enumerate(inputs)]


def _migrate(row: Row, work: Path) -> tuple[Path, Path, list[dict[str, Any]], int]:
    """Copies (and forks) the sources, runs ``flaxify migrate -o``; returns folders, TODOs, source lines."""
    src, out, report = work / "haiku", work / "flax", work / "migrate.json"
    src.mkdir()
    lines = 0
    for name, path in row.files.items():
        text = path.read_text()
        lines += len(text.splitlines())
        (src / name).write_text(NETS_TEST.fork_edit(text) if row.fork else text)
    with contextlib.redirect_stderr(io.StringIO()) as err:
        code = flaxify_main(["migrate", str(src), "-o", str(out), "--report", str(report)])
    if code not in (0, 1):
        raise RuntimeError(f"flaxify migrate exited {code}: {err.getvalue().strip()[-300:]}")
    todos = json.loads(report.read_text())["todos"]
    for todo in todos:  # name the original file, not the copy
        todo["file"] = row.files[Path(todo["file"]).name].name
    return src, out, todos, lines


def _param_count(row: Row, haiku_obj: Any, inputs: Any) -> int:
    """Haiku's parameter count (independent of the migration), from an abstract init."""
    model = as_haiku_model(haiku_obj, row.ctor)
    first = next(iter(inputs.values())) if isinstance(inputs, dict) else inputs
    kwargs = modes.mode_kwargs(row.kwargs or {}, training=True) or (row.kwargs or {})
    if isinstance(inputs, dict) and isinstance(next(iter((row.kwargs or {}).values()), None), dict):
        kwargs = {}
    params, _ = jax.eval_shape(lambda r: model.init(r, *first, **kwargs), jax.random.PRNGKey(0))
    return int(sum(np.prod(leaf.shape) for leaf in jax.tree.leaves(params)))


def _still_haiku(obj: Any) -> str:
    """What Haiku object the migrated reference still is, or "" when it is not one."""
    if isinstance(obj, type) and issubclass(obj, hk.Module):
        return "an hk.Module subclass"
    if isinstance(obj, (hk.Transformed, hk.TransformedWithState, hk.MultiTransformed, hk.MultiTransformedWithState)):
        return f"a {type(obj).__name__}"
    return ""


def _squares(tree: Any) -> Any:
    leaves = [x for x in jax.tree.leaves(tree) if jnp.issubdtype(jnp.asarray(x).dtype, jnp.floating)]
    return sum(jnp.sum(jnp.square(x.astype(jnp.float32))) for x in leaves)


def step_time_ratio(run: Any, repeats: int) -> dict[str, float]:
    """Median jitted train-step time, migrated over original, on JAX's default device."""
    m = run.pairs[0]
    kw = modes.mode_kwargs(m.kwargs, training=True) or m.kwargs
    hk_call, fx_call = run.hk_call(m, kw), run.fx_call(m, kw)

    def hk_loss(params: Any, state: Any, *xs: Any) -> Any:
        out, new_state = hk_call(params, state, *xs)
        return _squares(out), new_state

    def fx_loss(params: Any, rest: Any, *xs: Any) -> Any:
        out, updates = fx_call({"params": params, **rest}, *xs)
        return _squares(out), updates

    def stepper(loss: Callable[..., Any]) -> Callable[..., Any]:
        def step(params: Any, state: Any, *xs: Any) -> Any:
            (value, new_state), grads = jax.value_and_grad(loss, has_aux=True)(params, state, *xs)
            return jax.tree.map(lambda p, g: p - 1e-3 * g, params, grads), new_state, value

        return jax.jit(step)

    xs = [jnp.asarray(x) for x in m.inputs]
    variables = dict(run.variables)
    fx_params = variables.pop("params", {})
    # Both sides get device arrays. The mapped Flax variables are fresh NumPy arrays, mostly not 64-byte
    # aligned, which XLA's CPU client copies on every call (Haiku's are aligned views it aliases): timing
    # that copy made every ResNet look 5-9% slower (issue 6, benchmarks/results/resnet_step_time.md).
    sides = {
        "haiku": (stepper(hk_loss), jax.device_put((run.params, run.state, *xs))),
        "flax": (stepper(fx_loss), jax.device_put((fx_params, variables, *xs))),
    }
    times: dict[str, list[float]] = {"haiku": [], "flax": []}
    for fn, args in sides.values():
        jax.block_until_ready(fn(*args))  # compile
    for _ in range(repeats):
        for side, (fn, args) in sides.items():
            start = time.perf_counter()
            jax.block_until_ready(fn(*args))
            times[side].append(time.perf_counter() - start)
    hk_ms, fx_ms = (1e3 * statistics.median(times[s]) for s in ("haiku", "flax"))
    return {"haiku_ms": hk_ms, "flax_ms": fx_ms, "ratio": fx_ms / hk_ms}


def _max_abs(report: Any, device: str) -> float | None:
    values = [
        leaf.max_abs
        for check in report.checks
        if check.device == device and check.status == "compared" and check.phase in ("eval", "train")
        for leaf in check.leaves
    ]
    return max(values) if values else None


def _gpu_present() -> bool:
    try:
        return bool(jax.devices("gpu"))
    except RuntimeError:
        return False


def measure(row: Row, repeats: int) -> dict[str, Any]:
    """Migrates and checks one row; every failure is recorded, never raised."""
    res: dict[str, Any] = {"name": row.name, "group": row.group, "source": row.source}
    with tempfile.TemporaryDirectory(prefix="flaxify_zoo_") as tmp:
        try:
            src, out, todos, lines = _migrate(row, Path(tmp))
        except Exception as exc:  # noqa: BLE001 - recorded in the row
            return {**res, "error": f"migrate: {type(exc).__name__}: {exc}"}
        res.update(lines=lines, todos=todos)
        inputs = _specs(row.inputs)
        try:
            haiku_obj = row.haiku() if callable(row.haiku) else resolve_ref(f"{src}/{row.haiku}")
            with contextlib.suppress(Exception):  # the count is informative; the check below judges
                res["params"] = _param_count(row, haiku_obj, inputs)
            flax_obj = resolve_ref(f"{out}/{row.flax}")
            left = _still_haiku(flax_obj)
            if left:
                res["error"] = f"check not run: the migrated `{row.flax}` is still {left} (left under a TODO)"
                return res
            report, run = run_comparison(
                haiku_obj, flax_obj, inputs, kwargs=row.kwargs, ctor=row.ctor,
                devices="all" if _gpu_present() else "cpu", precision="highest", rtol=None, atol=None,
                methods=row.methods, init_seeds=0, run_probes=row.probes, seed=0, haiku_variables=None,
            )
        except Exception as exc:  # noqa: BLE001 - recorded in the row
            res["error"] = f"check: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
            return res
        res.update(
            equivalent=report.equivalent,
            bitexact=report.bitexact,
            mapping_ok=report.mapping_ok,
            flax_params=report.flax_param_count,
            max_abs_cpu=_max_abs(report, "cpu"),
            max_abs_gpu=_max_abs(report, "gpu") if _gpu_present() else None,
            notes=list(report.notes),
        )
        if report.equivalent:
            try:
                res["step"] = step_time_ratio(run, repeats)
            except Exception as exc:  # noqa: BLE001 - recorded in the row
                res["step_error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    return res


def _status(res: dict[str, Any]) -> str:
    if res.get("equivalent") and res.get("bitexact") and not res.get("todos"):
        return "green"
    if res.get("equivalent") and res.get("bitexact"):
        return "exact, TODO left"
    return "red"


def _fmt_count(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def _fmt_err(value: float | None) -> str:
    return "-" if value is None else ("0" if value == 0 else f"{value:.2e}")


def render(results: list[dict[str, Any]], env: dict[str, Any]) -> str:
    """The Markdown page."""
    gpu = env["gpu"]
    head = [
        "# Model zoo: real Haiku code, migrated by flaxify",
        "",
        "Generated by `python benchmarks/zoo_table.py` (do not edit by hand); raw numbers in",
        "[`benchmarks/results/zoo_cpu.json`](../benchmarks/results/zoo_cpu.json).",
        (
            f"Environment: {env['platform']}, {env['cpus']} CPU cores, jax {env['jax']}, flax {env['flax']}, "
            f"dm-haiku {env['haiku']}; GPU: {gpu or 'none'}; generated {env['date']}."
        ),
        "",
        "Each source is copied into a temporary folder (Haiku's own `hk.nets` files from the installed",
        "dm-haiku package, given only the fork edit their comment prescribes: the `class hk:` shim",
        "replaced by `import haiku as hk`), migrated by `flaxify migrate -o` without help, and compared",
        "with the original by `flaxify.equivalence` (parameters one to one; outputs in evaluation and,",
        "where the model has a mode flag, training; `highest` matmul precision). Max abs error is over",
        "evaluation and training outputs (random draws such as dropout are compared with Haiku's keys",
        "replayed into Flax's `make_rng` where the draws line up, and reported, not compared, where they",
        "cannot: keys drawn inside lifted transforms). Step-time",
        "ratio: median jitted training step (grad of squared outputs + SGD) of the migrated model over",
        "the original's, same device, interleaved repeats; on CPU, steps under a millisecond are mostly",
        "dispatch overhead, so on a loaded machine their ratio moves by up to 2x from run to run",
        "(re-measure one row with `--only NAME --repeats 200`).",
        "Status: **green** = no TODO left, equivalent and bit-exact; **exact, TODO left** = the",
        "migrated model is bit-exact but a TODO remains; **red** = not migrated exactly (why below).",
        "",
        (
            "| model | source | lines | TODOs left | parameters | max abs err CPU | max abs err GPU | bit-exact | "
            f"step-time ratio ({'GPU' if gpu else 'CPU'}) | status |"
        ),
        "| --- | --- | ---: | ---: | ---: | ---: | --- | --- | ---: | --- |",
    ]
    body = []
    for res in results:
        step = res.get("step")
        ratio = f"{step['ratio']:.2f} ({step['haiku_ms']:.2f} / {step['flax_ms']:.2f} ms)" if step else "-"
        gpu_cell = _fmt_err(res.get("max_abs_gpu")) if gpu else NO_GPU
        exact = "yes" if res.get("bitexact") else ("no" if "bitexact" in res else "-")
        body.append(
            f"| {res['name']} | `{res['source']}` | {res.get('lines', '-')} | {len(res.get('todos', []))} | "
            f"{_fmt_count(res.get('params'))} | {_fmt_err(res.get('max_abs_cpu'))} | {gpu_cell} | {exact} | {ratio} | "
            f"{_status(res)} |"
        )
    counts = {s: sum(_status(r) == s for r in results) for s in ("green", "exact, TODO left", "red")}
    head.insert(2, f"**{len(results)} models: {counts['green']} green, {counts['exact, TODO left']} exact with a TODO "
                f"left, {counts['red']} red.**")
    head.insert(3, "")
    details = ["", "## Why a row is not green", ""]
    seen: set[str] = set()
    for res in results:
        if _status(res) == "green":
            continue
        lines = [f"### {res['name']}", ""]
        if res.get("error"):
            lines.append(f"- {res['error']}")
        if res.get("step_error"):
            lines.append(f"- step time: {res['step_error']}")
        if res.get("equivalent") is False:
            lines.append("- not equivalent (see `flaxify check` on the migrated file)")
        key = res["source"]
        if res.get("todos") and key not in seen:
            seen.add(key)
            lines.append(f"- TODOs left in the migrated `{key}`:")
            lines += [f"  - migrated line {t['line']}: {t['construct']}: {t['reason']}" for t in res["todos"]]
        elif res.get("todos"):
            lines.append(f"- TODOs: the same {len(res['todos'])} as the other rows of `{key}` (listed above)")
        details += [*lines, ""]
    if len(details) == 3:
        details += ["Every row is green.", ""]
    reproduce = [
        "## Reproduce",
        "",
        "```sh",
        "python benchmarks/zoo_table.py                      # this page and benchmarks/results/zoo_cpu.json",
        "python -m pytest -q tests/test_realworld_haiku_nets.py tests/test_realworld_flax_guide.py",
        "```",
        "",
        "The tests assert what this page shows: red rows are strict xfails naming the engine gap.",
    ]
    return "\n".join([*head, *body, *details, *reproduce]).rstrip() + "\n"


def environment() -> dict[str, Any]:
    gpus = [d.device_kind for d in jax.devices("gpu")] if _gpu_present() else []
    return {
        "platform": platform.platform(terse=True),
        "cpus": os.cpu_count(),
        "jax": jax.__version__,
        "flax": flax.__version__,
        "haiku": hk.__version__,
        "gpu": ", ".join(gpus),
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
    }


def all_rows() -> list[Row]:
    return [*_nets_rows(), *_guide_rows(), *_project_rows(), *_zoo_rows()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="rows whose name contains this text (prints; writes nothing)")
    parser.add_argument("--repeats", type=int, default=30, help="timed steps per side (median)")
    parser.add_argument("--render", action="store_true", help="rewrite docs/zoo.md from the stored CPU JSON only")
    args = parser.parse_args(argv)
    if args.render:
        stored = json.loads((RESULTS / "zoo_cpu.json").read_text())
        DOC.write_text(render(stored["rows"], stored["environment"]))
        return 0
    rows = [r for r in all_rows() if not args.only or args.only.lower() in r.name.lower()]
    results = []
    for row in rows:
        start = time.perf_counter()
        res = measure(row, args.repeats)
        res["seconds"] = round(time.perf_counter() - start, 1)
        results.append(res)
        print(f"{row.name}: {_status(res)} ({res['seconds']} s) {res.get('error', '')}", file=sys.stderr)
    env = environment()
    page = render(results, env)
    if args.only:
        print(page)
        return 0
    DOC.write_text(page)
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = "zoo_gpu.json" if env["gpu"] else "zoo_cpu.json"
    (RESULTS / name).write_text(json.dumps({"environment": env, "rows": results}, indent=1, default=str) + "\n")
    print(f"wrote {DOC.relative_to(ROOT)} and {(RESULTS / name).relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
