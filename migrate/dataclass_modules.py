"""``@dataclasses.dataclass`` Haiku modules: Linen modules are dataclasses already.

Haiku's docs suggest writing modules as dataclasses, with an explicit ``name``
field that Haiku's metaclass hands to ``hk.Module.__init__``::

    @dataclasses.dataclass                     class Transformer(nn.Module):
    class Transformer(hk.Module):        ->      num_heads: int
      num_heads: int                             dropout_rate: float
      dropout_rate: float
      name: Optional[str] = None

Every ``nn.Module`` subclass is turned into a dataclass by Linen itself, with
``name`` (and ``parent``) as keyword-only fields of its own. Decorating it
again re-declares ``name`` as an ordinary field in the generated ``__init__``;
it happens to run in flax 0.12, but no Flax reviewer would accept it. So the
decorator goes, and so does a ``name: ... = None`` field (Linen's ``name``
takes its place, same keyword, same default). Only the plain forms are
removed -- ``@dataclass``, ``@dataclass()``, ``@dataclass(frozen=True)`` (a
Linen module is frozen anyway); a decorator with other options (``kw_only``,
``order``, ...) would change the constructor, so it stays as written.
"""

from __future__ import annotations

from collections.abc import Callable

import libcst as cst

from flaxify.migrate.layers_common import code

DATACLASS = frozenset({"dataclasses.dataclass"})
_HARMLESS = {"frozen": "True"}  # options a Linen module already has


def is_plain_dataclass(decorator: cst.Decorator, qualname_of: Callable[[cst.CSTNode], str | None]) -> bool:
    """True for ``@dataclass`` / ``@dataclass()`` / ``@dataclass(frozen=True)`` (any import spelling)."""
    target = decorator.decorator
    if qualname_of(target) not in DATACLASS:
        return False
    if not isinstance(target, cst.Call):
        return True
    return all(
        arg.keyword is not None and _HARMLESS.get(arg.keyword.value) == code(arg.value) for arg in target.args
    )


def strip(updated: cst.ClassDef, keep: list[bool]) -> cst.ClassDef:
    """Drops the decorators not kept and the class body's ``name: ... = None`` field."""
    decorators = [d for d, k in zip(updated.decorators, keep, strict=True) if k]
    body = [s for s in updated.body.body if not _is_name_field(s)]
    return updated.with_changes(decorators=decorators, body=updated.body.with_changes(body=body))


def _is_name_field(statement: cst.BaseStatement) -> bool:
    if not isinstance(statement, cst.SimpleStatementLine) or len(statement.body) != 1:
        return False
    small = statement.body[0]
    return (
        isinstance(small, cst.AnnAssign)
        and isinstance(small.target, cst.Name)
        and small.target.value == "name"
        and isinstance(small.value, cst.Name)
        and small.value.value == "None"
    )
