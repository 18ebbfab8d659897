"""Plot lint and migrate time against corpus size, to show that both grow linearly.

Rerun: `.venv/bin/python benchmarks/plot_scaling.py` after `benchmarks/lint_speed.py` and
`benchmarks/bench_migrate.py` (it only reads their results; matplotlib is needed here
only: `.venv/bin/pip install matplotlib`). Writes benchmarks/results/scaling.{png,md}.

- lint: each corpus of `lint_speed.json` (jax, flax, optax, haiku), flaxify lint and the
  bare `ast.parse` floor, seconds against lines.
- migrate: the Haiku files of `migrate_speed.json` in a fixed shuffled order; the time to
  migrate the first k files (the sum of their per-file times) against their lines, next
  to the LibCST parse + codegen floor of the same files.
Each panel carries a least-squares line through the origin and its R²: near 1 is linear.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402 - after choosing the backend

RESULTS = Path(__file__).resolve().parent / "results"


def fit_through_origin(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """Slope of y = a·x by least squares, and the R² of that fit."""
    slope = sum(x * y for x, y in zip(xs, ys)) / sum(x * x for x in xs)
    mean = sum(ys) / len(ys)
    total = sum((y - mean) ** 2 for y in ys) or 1e-12
    residual = sum((y - slope * x) ** 2 for x, y in zip(xs, ys))
    return slope, 1 - residual / total


def cumulative(rows: list[dict[str, Any]], key: str, points: int = 12) -> tuple[list[float], list[float]]:
    """Lines and seconds of the first k files for ``points`` values of k (rows already shuffled)."""
    xs, ys, lines, seconds = [], [], 0, 0.0
    marks = {round(len(rows) * (i + 1) / points) for i in range(points)}
    for index, row in enumerate(rows, start=1):
        lines += row["lines"]
        seconds += row[key]
        if index in marks:
            xs.append(lines)
            ys.append(seconds)
    return xs, ys


def panel(axis: Any, series: list[tuple[str, list[float], list[float], str]], title: str) -> list[str]:
    """Draws points and fitted lines; returns one text line per series."""
    notes = []
    for label, xs, ys, style in series:
        slope, r2 = fit_through_origin(xs, ys)
        axis.plot(xs, ys, style, label=f"{label} (R² {r2:.3f})")
        axis.plot([0, max(xs)], [0, slope * max(xs)], style[0] + "--", alpha=0.4)
        notes.append(f"- {title}, {label}: {1 / slope:,.0f} lines/s, linear fit R² {r2:.3f}")
    axis.set_title(title)
    axis.set_xlabel("lines of Python")
    axis.set_ylabel("seconds")
    axis.legend(fontsize=8)
    axis.grid(alpha=0.3)
    return notes


def main() -> int:
    lint = json.loads((RESULTS / "lint_speed.json").read_text(encoding="utf-8"))
    migrate = json.loads((RESULTS / "migrate_speed.json").read_text(encoding="utf-8"))
    corpora = sorted(lint["corpora"], key=lambda row: row["lines"])
    rows = list(migrate["per_file"])
    random.Random(0).shuffle(rows)
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    notes = panel(
        left,
        [("flaxify lint", [r["lines"] for r in corpora], [r["lint_s"] for r in corpora], "bo-"),
         ("ast.parse", [r["lines"] for r in corpora], [r["ast_parse_s"] for r in corpora], "gs-")],
        "lint: jax, flax, optax, haiku packages",
    )
    notes += panel(
        right,
        [("flaxify migrate", *cumulative(rows, "migrate"), "ro-"),
         ("LibCST parse + codegen", *cumulative(rows, "floor"), "gs-")],
        f"migrate: first k of {len(rows)} Haiku files",
    )
    figure.suptitle(f"flaxify time against corpus size ({migrate['environment']['date'][:10]}, "
                    f"{migrate['environment']['machine'].split(',')[0]})", fontsize=10)
    figure.tight_layout()
    figure.savefig(RESULTS / "scaling.png", dpi=110)
    text = ["# Time against corpus size", "", "![scaling](scaling.png)", "",
            "Lint points: `lint_speed.json` (the lint owner's benchmark); migrate points: "
            "`migrate_speed.json` per-file times, summed over growing prefixes of a fixed shuffle.", "", *notes]
    (RESULTS / "scaling.md").write_text("\n".join(text) + "\n", encoding="utf-8")
    print("\n".join(text))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
