"""Haiku's default weight initializer, spelled once per file as a module-level constant.

Every ``hk.Linear`` / ``hk.Conv*`` without ``w_init`` draws its weights from Haiku's default, which
no Flax initializer reproduces by name (see :data:`~flaxify.migrate.initializers.DEFAULT_KERNEL_INIT`).
The layer rewrites write that expression out in full; this last step hoists it into one commented
constant, so a migrated layer reads ``nn.Dense(300, kernel_init=HAIKU_DEFAULT_KERNEL_INIT, name="linear")``.

Example (after the layer rewrites)::

    h = nn.Dense(3, kernel_init=nn.initializers.variance_scaling(0.87962566103423978**2, "fan_in", "truncated_normal"))(x)
    # becomes
    HAIKU_DEFAULT_KERNEL_INIT = nn.initializers.variance_scaling(0.87962566103423978**2, "fan_in", "truncated_normal")
    ...
    h = nn.Dense(3, kernel_init=HAIKU_DEFAULT_KERNEL_INIT)(x)

A file that already binds the name keeps the full spelling (hoisting would read the user's value).
"""

from __future__ import annotations

from collections.abc import Sequence

import libcst as cst

from flaxify.migrate.initializers import DEFAULT_KERNEL_INIT
from flaxify.migrate.layers_common import code

NAME = "HAIKU_DEFAULT_KERNEL_INIT"

_COMMENT = (
    "# Haiku's default weight initializer (Linear and Conv layers): a unit normal truncated at two standard\n"
    "# deviations, times 1/sqrt(fan_in). variance_scaling rescales its truncated normal to the requested\n"
    "# variance; the 0.8796**2 factor undoes that, so the draws are Haiku's (lecun_normal's are not).\n"
)


class _Hoist(cst.CSTTransformer):
    """Replaces each spelled-out default initializer with the constant's name."""

    def __init__(self, spelled: str) -> None:
        super().__init__()
        self.spelled = spelled
        self.count = 0

    def leave_Call(self, original_node: cst.Call, updated_node: cst.Call) -> cst.BaseExpression:
        func = updated_node.func
        if isinstance(func, cst.Attribute) and func.attr.value == "variance_scaling" and code(updated_node) == self.spelled:
            self.count += 1
            return cst.Name(NAME)
        return updated_node


def hoist(
    statements: Sequence[cst.BaseStatement], *, nn: str, user_names: frozenset[str] | set[str]
) -> tuple[list[cst.BaseStatement], cst.SimpleStatementLine | None]:
    """``statements`` with the default initializer replaced by :data:`NAME`, and the constant's definition.

    The definition is None when nothing was replaced or the file binds :data:`NAME` itself.
    """
    spelled = DEFAULT_KERNEL_INIT.format(nn=nn)
    values = [_defines_constant(s) for s in statements]
    if NAME in user_names or any(value not in (None, spelled) for value in values):
        return list(statements), None  # the file binds the name to something else
    hoister = _Hoist(spelled)
    # A definition from an earlier run stays as it is (and no second one is added).
    changed = [s if value == spelled else s.visit(hoister) for s, value in zip(statements, values)]
    if not hoister.count or spelled in values:
        return changed, None
    # After a first statement, so that the comment stays with the definition (not the module header).
    definition = cst.parse_module(f"pass\n{_COMMENT}{NAME} = {spelled}\n").body[1]
    assert isinstance(definition, cst.SimpleStatementLine)
    return changed, definition  # type: ignore[return-value]


def _defines_constant(statement: cst.BaseStatement) -> str | None:
    """The source of the value ``statement`` assigns to :data:`NAME` at module level, else None."""
    if not isinstance(statement, cst.SimpleStatementLine):
        return None
    for small in statement.body:
        if isinstance(small, cst.Assign) and any(
            isinstance(t.target, cst.Name) and t.target.value == NAME for t in small.targets
        ):
            return code(small.value)
    return None
