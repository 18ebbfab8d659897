"""The equivalence report: a frozen value with a JSON form and a table form.

Nothing here prints; the CLI hands :meth:`Report.format_table` to
``flaxify.reporting``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from flaxify.equivalence.numerics import LeafDiff
from flaxify.equivalence.trace import LayerRow
from flaxify.equivalence.trees import describe

OUTPUT_PHASES = ("eval", "train", "probe")


@dataclass(frozen=True)
class ParamRow:
    """One line of the side-by-side parameter table."""

    haiku: str
    haiku_shape: tuple[int, ...] | None
    haiku_dtype: str
    flax: str
    flax_shape: tuple[int, ...] | None
    flax_dtype: str
    rule: str
    status: str  # ok | mismatch | unmapped | leftover | dropped
    note: str = ""


@dataclass(frozen=True)
class Check:
    """One comparison: a phase (eval, train, grad, state, probe) of a method on a device."""

    method: str
    phase: str
    device: str
    leaves: tuple[LeafDiff, ...]
    status: str = "compared"  # compared | stochastic (reported, not judged)
    label: str = ""
    # Random numbers in the Haiku call: "" none; "haiku-keys" compared with Haiku's key sequence
    # replayed into Flax; "lifted" / "keys-disagree" why a stochastic check was not compared.
    rng: str = ""
    # False for probes that move parameters off their values: a correct port may
    # order a scale multiply differently (GroupNorm), which is 1 ulp once scale != 1.
    counts_for_bitexact: bool = True

    @property
    def ok(self) -> bool:
        return self.status != "compared" or all(d.within for d in self.leaves)

    @property
    def bitexact(self) -> bool:
        return self.status == "compared" and all(d.bitexact is not False for d in self.leaves)


@dataclass(frozen=True)
class InitRow:
    """Initializer statistics of one Flax leaf against its Haiku source."""

    flax: str
    haiku: str
    haiku_mean: float
    haiku_std: float
    flax_mean: float
    flax_std: float
    ok: bool
    haiku_kurtosis: float = 0.0  # 3 normal, ~2.37 truncated at 2 sigma, 1.8 uniform
    flax_kurtosis: float = 0.0


@dataclass(frozen=True)
class Report:
    """Everything ``flaxify check`` found; ``equivalent`` decides the exit code."""

    haiku_kind: str
    flax_kind: str
    precision: str
    devices: tuple[str, ...]
    rtol: float | None
    atol: float | None
    params: tuple[ParamRow, ...]
    haiku_param_count: int
    flax_param_count: int
    checks: tuple[Check, ...] = ()
    init: tuple[InitRow, ...] = ()
    layers: tuple[LayerRow, ...] = ()
    culprits: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def mapping_ok(self) -> bool:
        return all(p.status in {"ok", "dropped"} for p in self.params)

    @property
    def outputs_equivalent(self) -> bool:
        """Parameters map and every output, gradient and state comparison is within tolerance."""
        return self.mapping_ok and bool(self.checks) and all(c.ok for c in self.checks)

    @property
    def init_equivalent(self) -> bool:
        """Every Flax initializer draws from Haiku's distribution (True when not measured)."""
        return all(r.ok for r in self.init)

    @property
    def equivalent(self) -> bool:
        return self.outputs_equivalent and self.init_equivalent

    @property
    def bitexact(self) -> bool:
        """Every compared *output* (evaluation, training, input probes) is bit-identical.

        Gradients, state and parameter-perturbing probes carry their own
        per-leaf flags: a backward pass may associate sums differently
        (GroupNorm) while the forward pass is exact.
        """
        judged = [
            c for c in self.checks if c.status == "compared" and c.phase in OUTPUT_PHASES and c.counts_for_bitexact
        ]
        return self.mapping_ok and bool(judged) and all(c.bitexact for c in judged)

    @property
    def outputs_compared(self) -> bool:
        """Some output, gradient or state check was judged (False: every phase drew unreplayable random numbers)."""
        return any(c.status == "compared" for c in self.checks)

    @property
    def gradients_bitexact(self) -> bool:
        grads = [c for c in self.checks if c.phase == "grad"]
        return bool(grads) and all(c.bitexact for c in grads)

    def to_json(self) -> dict[str, Any]:
        data = _jsonable(dataclasses.asdict(self))
        data["equivalent"] = self.equivalent
        data["bitexact"] = self.bitexact
        data["mapping_ok"] = self.mapping_ok
        data["gradients_bitexact"] = self.gradients_bitexact
        data["outputs_equivalent"] = self.outputs_equivalent
        data["init_equivalent"] = self.init_equivalent
        data["outputs_compared"] = self.outputs_compared
        for check, raw in zip(self.checks, data["checks"], strict=True):
            raw["ok"], raw["bitexact"] = check.ok, check.bitexact
        return data

    def format_table(self) -> str:
        return "\n".join(_param_lines(self) + _check_lines(self) + _init_lines(self) + _tail_lines(self))


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _shape(shape: tuple[int, ...] | None, dtype: str) -> str:
    return "-" if shape is None else describe(shape, dtype)


def _param_lines(report: Report) -> list[str]:
    lines = [f"Parameters (Haiku {report.haiku_kind} -> Flax {report.flax_kind})"]
    rows = [("status", "haiku", "shape", "flax", "shape", "rule")]
    for p in report.params:
        rows.append(
            (
                p.status,
                p.haiku or "-",
                _shape(p.haiku_shape, p.haiku_dtype),
                p.flax or "-",
                _shape(p.flax_shape, p.flax_dtype),
                p.rule + (f" ({p.note})" if p.note else ""),
            )
        )
    lines += _columns(rows)
    lines.append(f"  parameter count: Haiku {report.haiku_param_count}, Flax {report.flax_param_count}")
    return lines


def _check_lines(report: Report) -> list[str]:
    if not report.checks:
        return ["Outputs: not compared (the parameter trees do not map)"]
    lines = [f"Outputs and gradients (precision={report.precision}; passing leaves of a check are summarised)"]
    rows = [("device", "method", "phase", "leaf", "max abs", "max rel", "bit-exact", "ok")]
    for c in report.checks:
        phase = c.phase + (f":{c.label}" if c.label else "") + (" [Haiku keys]" if c.rng == "haiku-keys" else "")
        if c.status != "compared":
            worst = f"{max(d.max_abs for d in c.leaves):.3g}" if c.leaves else "-"
            rows.append((c.device, c.method, phase, "-", worst, "-", "-", c.status))
            continue
        passing = [d for d in c.leaves if d.within]
        shown = [d for d in c.leaves if not d.within] or passing[:1]
        for d in shown:
            rows.append((c.device, c.method, phase, *_leaf_cells([d], d.name)))
        rest = [d for d in passing if d not in shown]
        if rest:
            rows.append((c.device, c.method, phase, *_leaf_cells(rest, f"{len(rest)} more leaves")))
    return lines + _columns(rows)


def _leaf_cells(leaves: list[LeafDiff], name: str) -> tuple[str, ...]:
    """Leaf name, worst errors, bit-exactness (``k/n`` for a summary row) and verdict of some leaves."""
    judged = [d.bitexact for d in leaves if d.bitexact is not None]
    if not judged:
        exact = "n/a"
    elif len(leaves) == 1:
        exact = "yes" if judged[0] else "no"
    else:
        exact = f"{sum(judged)}/{len(judged)}"
    verdict = "ok" if all(d.within for d in leaves) else "FAIL"
    notes = "; ".join(dict.fromkeys(d.note for d in leaves if d.note and not d.within))
    worst_abs = max(d.max_abs for d in leaves)
    worst_rel = max(d.max_rel for d in leaves)
    return (name, f"{worst_abs:.3g}", f"{worst_rel:.3g}", exact, verdict + (f" ({notes})" if notes else ""))


def _init_lines(report: Report) -> list[str]:
    if not report.init:
        return []
    lines = ["Initializers (moments over seeds: Haiku / Flax)"]
    rows = [("flax leaf", "mean", "std", "kurtosis", "ok")]
    for r in report.init:
        rows.append(
            (
                r.flax,
                f"{r.haiku_mean:.4g} / {r.flax_mean:.4g}",
                f"{r.haiku_std:.4g} / {r.flax_std:.4g}",
                f"{r.haiku_kurtosis:.3g} / {r.flax_kurtosis:.3g}",
                "ok" if r.ok else "FAIL",
            )
        )
    return lines + _columns(rows)


def _tail_lines(report: Report) -> list[str]:
    lines = [f"  culprit: {c}" for c in report.culprits]
    lines += [f"  note: {n}" for n in report.notes]
    verdict = "EQUIVALENT" if report.equivalent else "NOT EQUIVALENT"
    if report.equivalent and report.checks and not report.outputs_compared:
        compared = "parameters and initializers" if report.init else "parameters"
        lines.append(
            f"{verdict} ({compared}; outputs draw random numbers and were not compared: "
            "pass kwargs that turn sampling off)"
        )
        return lines
    exact = "yes" if report.bitexact else "no"
    grads = "yes" if report.gradients_bitexact else "no"
    skipped = sum(c.status == "stochastic" for c in report.checks)
    tail = f"; {skipped} stochastic check{'s' if skipped > 1 else ''} not compared" if skipped else ""
    lines.append(f"{verdict} (outputs bit-exact: {exact}; gradients bit-exact: {grads}{tail})")
    return lines


def _columns(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
