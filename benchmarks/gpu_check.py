"""Run `flaxify check` over the model zoo on every device and print one table.

    python benchmarks/gpu_check.py                    # on a GPU machine
    python benchmarks/gpu_check.py --write benchmarks/results
    python benchmarks/gpu_check.py --allow-cpu        # CPU only: see the table shape

Per model and device: the max abs error of the evaluation outputs at
``default`` matmul precision (TF32 on recent NVIDIA GPUs) and at ``highest``,
whether ``highest`` is bit-exact, whether it is within tolerance, and the
wall time of the ``highest`` comparison (both models, all devices, one compile
each). Without a GPU it says so and exits 0, so CI can call it.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def gpu_devices() -> list:
    import jax

    try:
        return jax.devices("gpu")
    except RuntimeError:
        return []


def run_case(case_dir: Path, precision: str) -> tuple[dict[str, tuple[float, bool, bool]], float]:
    """Returns ({device: (max abs, bit-exact, within tolerance)}, seconds) for one zoo case."""
    from flaxify.equivalence import compare, parse_spec
    from flaxify.equivalence.refs import resolve_ref

    case = json.loads((case_dir / "case.json").read_text())
    specs = case["inputs"]
    inputs = (
        {m: [parse_spec(s, salt=i) for i, s in enumerate(v)] for m, v in specs.items()}
        if isinstance(specs, dict)
        else [parse_spec(s, salt=i) for i, s in enumerate(specs)]
    )
    start = time.perf_counter()
    report = compare(
        resolve_ref(str(case_dir / case["haiku"])),
        resolve_ref(str(case_dir / case["flax"])),
        inputs,
        kwargs=case["kwargs"],
        devices="all",
        precision=precision,
        init_seeds=0,
        run_probes=False,
    )
    seconds = time.perf_counter() - start
    per_device: dict[str, tuple[float, bool, bool]] = {}
    for check in report.checks:
        if check.phase != "eval":
            continue
        worst, exact, ok = per_device.get(check.device, (0.0, True, True))
        worst = max([worst] + [d.max_abs for d in check.leaves])
        per_device[check.device] = (worst, exact and check.bitexact, ok and check.ok)
    return per_device, seconds


def header(gpus: list) -> list[str]:
    import flax
    import haiku
    import jax
    import jaxlib

    card = gpus[0].device_kind if gpus else "none (CPU only)"
    driver = ""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        driver = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        ).stdout.strip()
    return [
        f"date: {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"card: {card}" + (f" ({driver})" if driver else ""),
        f"versions: jax {jax.__version__}, jaxlib {jaxlib.__version__}, flax {flax.__version__}, "
        f"dm-haiku {haiku.__version__}, python {platform.python_version()}",
    ]


def table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |" for row in rows]
    lines.insert(1, "| " + " | ".join("-" * w for w in widths) + " |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--zoo", type=Path, default=ROOT / "fixtures" / "zoo")
    parser.add_argument("--write", type=Path, metavar="DIR", help="also write the table to DIR/gpu_<date>.md")
    parser.add_argument("--allow-cpu", action="store_true", help="run even without a GPU (CPU rows only)")
    args = parser.parse_args(argv)
    gpus = gpu_devices()
    if not gpus and not args.allow_cpu:
        print("gpu_check: JAX sees no GPU on this machine; nothing to measure (use --allow-cpu to run on CPU).")
        return 0
    rows = [
        (
            "model",
            "device",
            "max abs (default)",
            "max abs (highest)",
            "bit-exact (highest)",
            "within tol",
            "time s (highest)",
        )
    ]
    failures = 0
    for case_dir in sorted(p.parent for p in args.zoo.glob("*/case.json")):
        default, _ = run_case(case_dir, "default")
        highest, seconds = run_case(case_dir, "highest")
        for device, (worst, exact, ok) in highest.items():
            failures += not ok
            rows.append(
                (
                    case_dir.name,
                    device,
                    f"{default[device][0]:.3g}",
                    f"{worst:.3g}",
                    "yes" if exact else "no",
                    "yes" if ok else "NO",
                    f"{seconds:.2f}",
                )
            )
    lines = header(gpus) + [""] + table(rows)
    print("\n".join(lines))
    if args.write:
        args.write.mkdir(parents=True, exist_ok=True)
        out = args.write / f"gpu_{dt.date.today().isoformat()}.md"
        out.write_text("# flaxify check over the model zoo\n\n" + "\n".join(lines) + "\n")
        print(f"wrote {out}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
