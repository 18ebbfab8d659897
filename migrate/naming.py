"""Haiku's module-naming rules, replayed statically.

The migrated Flax tree mirrors Haiku's module names (``name=`` on every
submodule), so a trained checkpoint converts by a deterministic rule. Haiku
names a module ``camel_to_snake(ClassName)`` and uniquifies it with a counter
per base name and per (parent module, method call): the first ``hk.Linear`` in
``__call__`` is ``linear``, the next ``linear_1``. An explicit ``name="x_3"`` is
parsed as base ``x`` and number 3 and advances that counter
(``haiku/_src/module.py::unique_and_canonical_name``).

A name can only be computed statically when every construction of that base
name in the scope runs exactly once per call, in source order. Constructions in
loops, branches, comprehensions or nested functions make the counter depend on
run-time values; for those base names no ``name=`` is emitted and Flax's
auto-names apply (the checker then maps them by creation order and shape).
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field

_CAMEL_BOUNDARY = re.compile(r"((?<=[a-z0-9])[A-Z]|(?!^)[A-Z](?=[a-z]))")
_NUMBERED = re.compile(r"_(0|[1-9]\d*)$")


def camel_to_snake(class_name: str) -> str:
    """Haiku's default module name: ``Conv2D`` → ``conv2_d``, ``MLP`` → ``mlp``."""
    return _CAMEL_BOUNDARY.sub(r"_\1", class_name).lower()


def name_and_number(name: str) -> tuple[str, int | None]:
    """Splits ``linear_3`` into ``("linear", 3)``; an unnumbered name has ``None``."""
    parts = _NUMBERED.split(name, maxsplit=1)
    if len(parts) > 1:
        return parts[0], int(parts[1])
    return name, None


@dataclass(frozen=True)
class Construction:
    """One module construction seen in a scope, in source order."""

    key: int  # identity of the call node (id()), to find it again when rewriting
    base: str | None  # Haiku base name; None when the explicit name is not a literal
    explicit: bool  # the call passed name="..."
    dynamic: bool  # inside a loop, branch, comprehension, lambda or nested def


@dataclass
class ScopeNamer:
    """Assigns Haiku names to the constructions of one (module, method) scope."""

    constructions: list[Construction] = field(default_factory=list)

    def add(self, construction: Construction) -> None:
        self.constructions.append(construction)

    def names(self) -> dict[int, str]:
        """Returns ``{call key: haiku name}`` for the statically nameable calls."""
        unsure = {c.base for c in self.constructions if c.dynamic or c.base is None}
        counters: dict[str, int] = defaultdict(int)
        result: dict[int, str] = {}
        for c in self.constructions:
            if c.base is None or c.base in unsure:
                continue
            base, number = name_and_number(c.base) if c.explicit else (c.base, None)
            explicit_number = number is not None
            if number is None:
                number = counters[base]
            result[c.key] = f"{base}_{number}" if explicit_number or number else base
            counters[base] = max(counters[base], number + 1)
        return result
