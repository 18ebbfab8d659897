"""The Flax side: a module instance (or class + ``ctor``), its methods and module table."""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax

from flaxify.equivalence.errors import UnsupportedModelKindError
from flaxify.equivalence.trees import FlaxPath


def as_flax_module(obj: Any, ctor: Mapping[str, Any] | None = None) -> nn.Module:
    """Returns the module instance a FLAX_REF names (instantiating a class with ``ctor``)."""
    if isinstance(obj, nn.Module):
        if ctor:
            raise UnsupportedModelKindError("--ctor was given but the Flax reference is already a module instance")
        return obj
    if isinstance(obj, type) and issubclass(obj, nn.Module):
        try:
            return obj(**dict(ctor or {}))
        except TypeError as exc:
            raise UnsupportedModelKindError(
                f"cannot construct {obj.__name__} with --ctor {dict(ctor or {})}: {exc}"
            ) from None
    raise UnsupportedModelKindError(
        f"the Flax reference is a {type(obj).__name__}; expected a flax.linen Module instance or class"
    )


def public_methods(module: nn.Module) -> list[str]:
    """Methods the user defined on the module's class (definition order), for multi-method models."""
    names = []
    for name, value in vars(type(module)).items():
        if inspect.isfunction(value) and not name.startswith("_") and name != "setup":
            names.append(name)
    return names


def module_table(
    module: nn.Module, rngs: Any, *args: Any, method: str = "__call__", **kwargs: Any
) -> dict[FlaxPath, str]:
    """``{module path: class name}`` in creation order, recorded while initialising abstractly."""
    table: dict[FlaxPath, str] = {}

    def record(next_fun, call_args, call_kwargs, context):
        scope = context.module.scope
        if scope is not None:
            table.setdefault(tuple(scope.path), type(context.module).__name__)
        return next_fun(*call_args, **call_kwargs)

    with nn.intercept_methods(record):
        jax.eval_shape(lambda r, a: module.init(r, *a, method=method, **kwargs), rngs, tuple(args))
    return table


def stateful_collections(variables: Mapping[str, Any]) -> list[str]:
    return [c for c in variables if c != "params"]


def merge_trees(trees: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Deep-merges variable trees from initialising several methods."""
    out: dict[str, Any] = {}
    for tree in trees:
        _merge_into(out, tree)
    return out


def _merge_into(dst: dict[str, Any], src: Mapping[str, Any]) -> None:
    for key, value in src.items():
        if isinstance(value, Mapping):
            _merge_into(dst.setdefault(key, {}), value)
        else:
            dst.setdefault(key, value)
