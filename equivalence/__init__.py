"""``flaxify.equivalence``: prove a Flax port computes what its Haiku original computes.

Public API:

* :func:`map_params` — Haiku params/state → Flax variables, every leaf mapped once.
* :func:`compare` — parameters, outputs, gradients, state, probes and
  initializer statistics on every device, as a :class:`Report`.
* :func:`parse_spec` — ``f32[8,28,28,1]``-style input SPECs.
* :func:`convert_checkpoint` — a Haiku ``.npz``/pickle checkpoint → Flax variables.
"""

from __future__ import annotations

from flaxify.equivalence.errors import CheckUsageError, ParamMappingError
from flaxify.equivalence.mapping import MappingPlan, build_plan, map_params
from flaxify.equivalence.spec import parse_spec

__all__ = [
    "CheckUsageError",
    "MappingPlan",
    "ParamMappingError",
    "build_plan",
    "compare",
    "convert_checkpoint",
    "map_params",
    "parse_spec",
    "Report",
]


def __getattr__(name: str):
    # compare/convert pull in haiku and flax; importing them lazily keeps
    # `import flaxify.equivalence` light for the parts that only parse specs.
    if name in {"compare", "Report"}:
        from flaxify.equivalence import report, runner

        return runner.compare if name == "compare" else report.Report
    if name == "convert_checkpoint":
        from flaxify.equivalence import convert

        return convert.convert_checkpoint
    raise AttributeError(name)
