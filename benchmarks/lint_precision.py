"""Precision of `flaxify lint` on real JAX code: the installed sources of jax, flax, optax and dm-haiku.

Every finding is listed with its reviewed verdict (REVIEWED below); a finding without a verdict is
counted as a possible false positive. Rerun: `.venv/bin/python benchmarks/lint_precision.py`
(writes benchmarks/results/lint_precision.{json,md}).
"""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import platform
import sys
from pathlib import Path

from flaxify.lint.api import lint_paths
from flaxify.lint.settings import LintSettings

CORPORA = {"jax": "jax", "flax": "flax", "optax": "optax", "dm-haiku": "haiku"}
RESULTS = Path(__file__).resolve().parent / "results"

# (path inside site-packages, line, code) -> verdict, written after reading the code.
REVIEWED: dict[tuple[str, int, str], str] = {
    ("optax/losses/_segmentation.py", 156, "JX202"): (
        "true positive: `dice_loss(..., apply_softmax=False)` runs `if not jnp.allclose(...)` on traced "
        "predictions; optax's own test jits dice_loss. Verified with jax 0.10.2: eager works, "
        "`jax.jit(dice_loss, static_argnames='apply_softmax')(p, t, apply_softmax=False)` raises "
        "TracerBoolConversionError"
    ),
}


def site_packages() -> Path:
    import jax

    return Path(jax.__file__).resolve().parent.parent


def count_lines(root: Path) -> int:
    return sum(p.read_bytes().count(b"\n") for p in root.rglob("*.py"))


def main() -> int:
    site = site_packages()
    rows = []
    for dist, package in CORPORA.items():
        root = site / package
        result = lint_paths([root], LintSettings())
        findings = []
        for f in result.findings:
            relative = str(Path(f.path).resolve().relative_to(site))
            verdict = REVIEWED.get((relative, f.line, f.code), "UNREVIEWED (counted as a false positive)")
            findings.append({"path": relative, "line": f.line, "column": f.column, "code": f.code,
                             "message": f.message, "verdict": verdict})
        false_pos = sum(1 for f in findings if not f["verdict"].startswith("true positive"))
        lines = count_lines(root)
        rows.append({"corpus": dist, "version": importlib.metadata.version(dist), "files": result.files,
                     "lines": lines, "findings": findings, "false_positives": false_pos,
                     "fp_per_10k_lines": round(false_pos / lines * 10_000, 3)})
    meta = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "python": sys.version.split()[0], "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
            "flaxify": importlib.metadata.version("flaxify")}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "lint_precision.json").write_text(json.dumps({"meta": meta, "corpora": rows}, indent=2) + "\n")
    (RESULTS / "lint_precision.md").write_text(render(meta, rows))
    print(render(meta, rows))
    return 0


def render(meta: dict[str, str], rows: list[dict]) -> str:  # type: ignore[type-arg]
    total_lines = sum(r["lines"] for r in rows)
    total_fp = sum(r["false_positives"] for r in rows)
    out = [
        "# flaxify lint — precision on installed library sources",
        "",
        f"{meta['date']} · Python {meta['python']} · flaxify {meta['flaxify']} · "
        f"`.venv/bin/python benchmarks/lint_precision.py`",
        "",
        "| corpus | version | files | lines | findings | false positives | FP / 10k lines |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        out.append(f"| {r['corpus']} | {r['version']} | {r['files']} | {r['lines']} | {len(r['findings'])} | "
                   f"{r['false_positives']} | {r['fp_per_10k_lines']} |")
    out.append(f"| **all** | | | {total_lines} | {sum(len(r['findings']) for r in rows)} | {total_fp} | "
               f"{round(total_fp / total_lines * 10_000, 3)} |")
    out += ["", "Target: at most 1 false positive per 10,000 lines.", "", "## Every finding, reviewed", ""]
    for r in rows:
        for f in r["findings"]:
            out.append(f"- `{f['path']}:{f['line']}:{f['column']}` {f['code']} — {f['verdict']}")
    if not any(r["findings"] for r in rows):
        out.append("(none)")
    out += ["", "## How to read this", "",
            "Each corpus is linted on its own, as a project. Calls into the framework packages (jax, flax, "
            "haiku, optax, ...) are not followed: their implementations handle tracers on purpose (avals, "
            "`isinstance(x, Tracer)`, `try/except ConcretizationTypeError`), which no static tool can see. "
            "Their own traced roots — functions they jit, vmap or scan, Flax/Haiku module methods, lax "
            "bodies — are linted, with every helper in the same corpus they call. Before that policy, "
            "following public API calls into jax's internals produced ~240 findings on jax alone, all in "
            "code that is written to run on tracers.", ""]
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
