"""Small helpers several rules share."""

from __future__ import annotations

import ast

from flaxify.lint.model import Taint
from flaxify.lint.rule import TracedContext


def call_args(node: ast.Call) -> list[ast.expr]:
    """Positional and keyword argument values of a call."""
    return [*node.args, *(k.value for k in node.keywords)]


def traced_args(node: ast.Call, ctx: TracedContext, at_least: Taint = Taint.TREE) -> list[ast.expr]:
    """The arguments of ``node`` whose taint is at least ``at_least``."""
    return [arg for arg in call_args(node) if ctx.taint(arg) >= at_least]


def root_name(node: ast.expr) -> ast.Name | None:
    """``a`` for ``a``, ``a.b``, ``a[0].c``; None for anything else."""
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        node = node.value
    return node if isinstance(node, ast.Name) else None


def name_available(ctx: TracedContext, name: str, qualname: str) -> bool:
    """True when ``name`` is bound in the module to ``qualname`` (e.g. ``jax`` -> ``jax``)."""
    return ctx.module.imports.bound.get(name) == qualname
