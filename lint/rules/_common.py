"""Small helpers several rules share."""

from __future__ import annotations

import ast

from flaxify.lint.model import Taint
from flaxify.lint.rule import ModuleContext, TracedContext


def call_args(node: ast.Call) -> list[ast.expr]:
    """Positional and keyword argument values of a call."""
    return [*node.args, *(k.value for k in node.keywords)]


def traced_args(node: ast.Call, ctx: TracedContext, at_least: Taint = Taint.TREE) -> list[ast.expr]:
    """The arguments of ``node`` whose taint is at least ``at_least``."""
    return [arg for arg in call_args(node) if ctx.taint(arg) >= at_least]


def formats_traced(node: ast.expr, ctx: TracedContext) -> bool:
    """A string built from a traced value: ``f"{x}"``, ``"%s" % x``, ``"{}".format(x)``."""
    if isinstance(node, ast.JoinedStr):
        return any(isinstance(v, ast.FormattedValue) and ctx.taint(v.value) for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod) and isinstance(node.left, ast.Constant):
        return bool(ctx.taint(node.right))
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format"
            and isinstance(node.func.value, ast.Constant)):
        return bool(traced_args(node, ctx))
    return False


def shows_traced(node: ast.Call, ctx: TracedContext) -> bool:
    """Some argument is traced, or is a string formatted from a traced value."""
    return any(ctx.taint(arg) or formats_traced(arg, ctx) for arg in call_args(node))


def maybe_static_field(node: ast.expr, ctx: TracedContext) -> bool:
    """``cfg.num_layers`` on a traced pytree may be a static field (``pytree_node=False``): don't guess."""
    return isinstance(node, ast.Attribute) and ctx.taint(node) == Taint.TREE


def root_name(node: ast.expr) -> ast.Name | None:
    """``a`` for ``a``, ``a.b``, ``a[0].c``; None for anything else."""
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        node = node.value
    return node if isinstance(node, ast.Name) else None


def name_available(ctx: TracedContext, name: str, qualname: str) -> bool:
    """True when ``name`` is bound in the module to ``qualname`` (e.g. ``jax`` -> ``jax``)."""
    return ctx.module.imports.bound.get(name) == qualname


class FormatBuilder:
    """Builds a ``str.format`` template and its arguments, as ``jax.debug.print`` takes them.

    ``f"x={x:.3f} y={y + 1}"`` becomes ``"x={x:.3f} y={}"`` with ``y + 1`` positional and
    ``x=x`` as a keyword (str.format allows mixing automatic and named fields).
    """

    def __init__(self, ctx: ModuleContext) -> None:
        self.ctx = ctx
        self.text: list[str] = []
        self.positional: list[str] = []
        self.keywords: dict[str, str] = {}

    def literal(self, value: str) -> None:
        self.text.append(value.replace("{", "{{").replace("}", "}}"))

    def value(self, node: ast.expr, conversion: int = -1, spec: str = "") -> None:
        tail = (f"!{chr(conversion)}" if conversion != -1 else "") + (f":{spec}" if spec else "")
        if isinstance(node, ast.Name):
            self.keywords[node.id] = node.id
            self.text.append("{" + node.id + tail + "}")
        else:
            self.positional.append(self.ctx.segment(node))
            self.text.append("{" + tail + "}")

    def joined(self, node: ast.JoinedStr) -> bool:
        """Adds an f-string's parts; False when a format spec is itself computed."""
        for part in node.values:
            if isinstance(part, ast.Constant):
                self.literal(str(part.value))
                continue
            assert isinstance(part, ast.FormattedValue)
            spec = ""
            if part.format_spec is not None:
                pieces = part.format_spec.values  # type: ignore[attr-defined]
                if not all(isinstance(v, ast.Constant) for v in pieces):
                    return False
                spec = "".join(str(v.value) for v in pieces)
            self.value(part.value, part.conversion, spec)
        return True

    def call(self, func: str) -> str:
        args = [repr("".join(self.text)), *self.positional, *(f"{k}={v}" for k, v in self.keywords.items())]
        return f"{func}({', '.join(args)})"
