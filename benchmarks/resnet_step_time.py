"""Issue 6: why the migrated ResNet measured 5-9% slower per train step than Haiku's (docs/zoo.md).

    .venv/bin/python benchmarks/resnet_step_time.py                 # ResNet18 v1, 1x32x32x3, 40 repeats
    .venv/bin/python benchmarks/resnet_step_time.py --row "ResNet50 v1" --repeats 20

Builds the zoo row exactly as ``zoo_table.py`` does (Haiku's resnet.py, fork
edit, ``flaxify migrate -o``, ``flaxify.equivalence`` mapping; no probes), then:

1. compiles both jitted train steps of ``zoo_table.step_time_ratio`` and
   compares the optimized HLO: instruction multiset and ENTRY schedule with
   instruction names and metadata stripped;
2. reports how the step's arguments are held (64-byte aligned or not; NumPy
   arrays that are not must be copied by every jitted call on CPU);
3. times ``jax.device_put`` of each side's arguments (the per-call transfer);
4. times the two steps interleaved, in CPU time and wall time, with the
   arguments as ``zoo_table.py`` passed them before the fix (NumPy) and as
   device arrays (what it passes now).

Prints a Markdown report (the one recorded in results/resnet_step_time.md).
"""

from __future__ import annotations

import argparse
import collections
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from flaxify.equivalence import modes
from flaxify.equivalence.refs import resolve_ref
from flaxify.equivalence.runner import run_comparison

sys.path.insert(0, str(Path(__file__).resolve().parent))
import zoo_table  # the zoo's own rows and helpers, so both measure the same thing

#: XLA's CPU client aliases a host buffer only at this alignment; otherwise ``device_put`` copies it.
ALIGNMENT = 64


def build(row_name: str) -> Any:
    """Migrates the zoo row and maps Haiku's variables onto the migrated model; returns the session."""
    row = next((r for r in zoo_table.all_rows() if r.name == f"hk.nets.{row_name}"), None)
    if row is None:
        raise SystemExit(f"no zoo row named hk.nets.{row_name}")
    _, out, _, _ = zoo_table._migrate(row, Path(tempfile.mkdtemp(prefix="flaxify_issue6_")))
    report, run = run_comparison(
        row.haiku(), resolve_ref(f"{out}/{row.flax}"), zoo_table._specs(row.inputs), kwargs=row.kwargs,
        ctor=row.ctor, devices="cpu", precision="highest", rtol=None, atol=None, methods=row.methods,
        init_seeds=0, run_probes=False, seed=0, haiku_variables=None,
    )  # fmt: skip
    if not (report.equivalent and report.bitexact):
        raise SystemExit(f"{row.name}: the migrated model is not bit-exact; nothing to time")
    return run


def steps(run: Any) -> dict[str, tuple[Callable[..., Any], tuple[Any, ...]]]:
    """The two jitted train steps of ``zoo_table.step_time_ratio`` with the arguments it used to pass."""
    m = run.pairs[0]
    kw = modes.mode_kwargs(m.kwargs, training=True) or m.kwargs
    hk_call, fx_call = run.hk_call(m, kw), run.fx_call(m, kw)

    def hk_loss(params: Any, state: Any, *xs: Any) -> Any:
        out, new_state = hk_call(params, state, *xs)
        return zoo_table._squares(out), new_state

    def fx_loss(params: Any, rest: Any, *xs: Any) -> Any:
        out, updates = fx_call({"params": params, **rest}, *xs)
        return zoo_table._squares(out), updates

    def stepper(loss: Callable[..., Any]) -> Callable[..., Any]:
        def step(params: Any, state: Any, *xs: Any) -> Any:
            (value, new_state), grads = jax.value_and_grad(loss, has_aux=True)(params, state, *xs)
            return jax.tree.map(lambda p, g: p - 1e-3 * g, params, grads), new_state, value

        return jax.jit(step)

    xs = [jnp.asarray(x) for x in m.inputs]
    variables = dict(run.variables)
    fx_params = variables.pop("params", {})
    return {
        "haiku": (stepper(hk_loss), (run.params, run.state, *xs)),
        "flax": (stepper(fx_loss), (fx_params, variables, *xs)),
    }


def _hlo_lines(text: str) -> tuple[list[str], list[str]]:
    """All instructions (names, metadata stripped) and the ENTRY computation's schedule (op kinds and shapes)."""
    body = text[text.index("\n%") :]  # skip the header and the stack-frame tables (file names differ)
    lines = []
    for line in body.splitlines():
        line = re.sub(r", metadata=\{[^}]*\}", "", line)
        line = re.sub(r"%[\w.\-]+", "%_", line)
        lines.append(re.sub(r"\b\w+\.\d+(?=[:\s])", "_", line).rstrip())
    entry = text[text.index("\nENTRY") :].split("\n}\n")[0].splitlines()[2:]
    schedule = [m.group(2) + " " + m.group(1) for m in (re.match(r"\s*(?:ROOT )?%\S+ = (\S+) ([\w-]+)\(", x) for x in entry) if m]
    return lines, schedule


def compare_hlo(sides: dict[str, tuple[Callable[..., Any], tuple[Any, ...]]]) -> list[str]:
    """Markdown lines comparing the optimized HLO of the two steps."""
    texts = {s: fn.lower(*args).compile().as_text() for s, (fn, args) in sides.items()}
    (h_lines, h_sched), (f_lines, f_sched) = _hlo_lines(texts["haiku"]), _hlo_lines(texts["flax"])
    kinds = {s: collections.Counter(op.split()[0] for op in sched) for s, sched in (("haiku", h_sched), ("flax", f_sched))}
    differing = sum((collections.Counter(h_lines) - collections.Counter(f_lines)).values())
    ops = ", ".join(f"{k} {n}" for k, n in kinds["haiku"].most_common(8))
    same = "identical in order, op kind and shape" if h_sched == f_sched else "different"
    return [
        (
            f"- optimized HLO lines (names and metadata stripped): Haiku {len(h_lines)}, Flax {len(f_lines)}; "
            f"lines in one and not the other: {differing}"
        ),
        f"- ENTRY schedule: {len(h_sched)} vs {len(f_sched)} instructions, {same}; most common: {ops}",
    ]


def _aligned(leaf: Any) -> bool:
    return isinstance(leaf, np.ndarray) and leaf.ctypes.data % ALIGNMENT == 0


def describe_args(sides: dict[str, tuple[Callable[..., Any], tuple[Any, ...]]]) -> list[str]:
    """Markdown lines: how many argument bytes each side holds as aligned / unaligned NumPy arrays."""
    lines = []
    for side, (_, args) in sides.items():
        leaves = [x for x in jax.tree.leaves(args) if isinstance(x, np.ndarray)]
        total = sum(x.nbytes for x in leaves)
        unaligned = sum(x.nbytes for x in leaves if not _aligned(x))
        views = sum(x.nbytes for x in leaves if not x.flags.writeable)
        lines.append(
            f"- {side}: {len(leaves)} NumPy leaves, {total / 1e6:.1f} MB; not {ALIGNMENT}-byte aligned: "
            f"{unaligned / 1e6:.1f} MB; read-only views of JAX buffers: {views / 1e6:.1f} MB"
        )
    return lines


def _realigned(leaf: Any) -> Any:
    """A copy of a NumPy leaf whose data starts on an ``ALIGNMENT``-byte boundary."""
    if not isinstance(leaf, np.ndarray):
        return leaf
    raw = np.empty(leaf.nbytes + ALIGNMENT, np.uint8)
    start = -raw.ctypes.data % ALIGNMENT
    out = raw[start : start + leaf.nbytes].view(leaf.dtype).reshape(leaf.shape)
    out[...] = leaf
    return out


def _cpu_ms(fn: Callable[[], Any], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.process_time()
        jax.block_until_ready(fn())
        times.append(time.process_time() - start)
    return 1e3 * statistics.median(times)


def transfer_costs(sides: dict[str, tuple[Callable[..., Any], tuple[Any, ...]]], repeats: int) -> list[str]:
    """Markdown lines: CPU time of one ``device_put`` of each side's arguments, as held and realigned."""
    lines = []
    for side, (_, args) in sides.items():
        realigned = jax.tree.map(_realigned, args)
        as_held = _cpu_ms(lambda a=args: jax.device_put(a), repeats)
        aligned = _cpu_ms(lambda a=realigned: jax.device_put(a), repeats)
        lines.append(f"- {side}: {as_held:.2f} ms as held, {aligned:.2f} ms after copying every leaf to an aligned buffer")
    return lines


def time_steps(sides: dict[str, tuple[Callable[..., Any], tuple[Any, ...]]], repeats: int) -> list[str]:
    """Markdown table rows: median CPU and wall ms per step, NumPy vs device arguments, interleaved."""
    variants = {}
    for side, (fn, args) in sides.items():
        variants[f"{side}, NumPy args"] = (fn, args)
        variants[f"{side}, device args"] = (fn, jax.device_put(args))
    for fn, args in variants.values():
        jax.block_until_ready(fn(*args))  # compile, warm up
    cpu: dict[str, list[float]] = {k: [] for k in variants}
    wall: dict[str, list[float]] = {k: [] for k in variants}
    for i in range(repeats):
        order = list(variants.items())
        for name, (fn, args) in order if i % 2 else order[::-1]:  # alternate who runs first
            c, w = time.process_time(), time.perf_counter()
            jax.block_until_ready(fn(*args))
            cpu[name].append(time.process_time() - c)
            wall[name].append(time.perf_counter() - w)
    med = {k: (1e3 * statistics.median(cpu[k]), 1e3 * statistics.median(wall[k])) for k in variants}
    rows = ["| variant | CPU ms (median) | wall ms (median) |", "| --- | ---: | ---: |"]
    rows += [f"| {k} | {c:.2f} | {w:.2f} |" for k, (c, w) in med.items()]
    for args in ("NumPy args", "device args"):
        (hc, hw), (fc, fw) = med[f"haiku, {args}"], med[f"flax, {args}"]
        rows.append(f"| **ratio flax/haiku, {args}** | **{fc / hc:.3f}** | **{fw / hw:.3f}** |")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--row", default="ResNet18 v1", help='zoo row after "hk.nets.", e.g. "ResNet50 v1"')
    parser.add_argument("--repeats", type=int, default=40, help="timed steps per variant (median)")
    args = parser.parse_args(argv)
    sides = steps(build(args.row))
    env = zoo_table.environment()
    print(f"## hk.nets.{args.row}, jax {env['jax']}, flax {env['flax']}, {env['cpus']} CPUs, {env['date']}\n")
    print("Compiled train steps:\n", *compare_hlo(sides), sep="\n")
    print("\nStep arguments as `zoo_table.step_time_ratio` passed them before the fix:\n", *describe_args(sides), sep="\n")
    print("\nCPU time of one `jax.device_put` of those arguments (median):\n", *transfer_costs(sides, args.repeats), sep="\n")
    print(f"\nTrain step, {args.repeats} interleaved repeats per variant:\n", *time_steps(sides, args.repeats), sep="\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
