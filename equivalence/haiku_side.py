"""Every supported Haiku model kind, seen through one interface.

``hk.Transformed`` and ``hk.TransformedWithState`` (each with or without
``without_apply_rng``), ``hk.MultiTransformed[WithState]`` (one method per
apply function), a plain function (transformed here) and an ``hk.Module``
subclass (instantiated with ``ctor`` inside a transform here).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import haiku as hk
import jax

from flaxify.equivalence.errors import UnsupportedModelKindError

# apply(params, state, rng, *args, **kwargs) -> (out, state)
ApplyFn = Callable[..., tuple[Any, Any]]


@dataclass(frozen=True)
class HaikuModel:
    """A Haiku model as ``init -> (params, state)`` and named stateful apply functions."""

    kind: str
    init: Callable[..., tuple[Any, Any]]
    methods: Mapping[str, ApplyFn]
    root_is_module: bool
    named_methods: bool = True


def as_haiku_model(obj: Any, ctor: Mapping[str, Any] | None = None) -> HaikuModel:
    """Wraps ``obj`` (what a HAIKU_REF resolved to); raises for anything else."""
    if isinstance(obj, hk.TransformedWithState):
        return HaikuModel("hk.TransformedWithState", obj.init, {"__call__": _stateful_apply(obj.apply)}, False)
    if isinstance(obj, hk.Transformed):
        return HaikuModel("hk.Transformed", _stateless_init(obj.init), {"__call__": _stateless_apply(obj.apply)}, False)
    if isinstance(obj, (hk.MultiTransformed, hk.MultiTransformedWithState)):
        return _multi(obj)
    if isinstance(obj, type) and issubclass(obj, hk.Module):
        kwargs = dict(ctor or {})
        transformed = hk.transform_with_state(lambda *a, **k: obj(**kwargs)(*a, **k))
        return HaikuModel(f"hk.Module subclass {obj.__name__}", transformed.init, {"__call__": transformed.apply}, True)
    if isinstance(obj, hk.Module):
        raise UnsupportedModelKindError(
            "an hk.Module instance cannot be used outside a transform; reference its class and pass --ctor"
        )
    if inspect.isfunction(obj) or inspect.ismethod(obj):
        transformed = hk.transform_with_state(obj)
        return HaikuModel(
            "function (transformed with hk.transform_with_state)",
            transformed.init,
            {"__call__": transformed.apply},
            False,
        )
    raise UnsupportedModelKindError(
        f"the Haiku reference is a {type(obj).__name__}; expected hk.Transformed, hk.TransformedWithState, "
        "hk.MultiTransformed, a function or an hk.Module subclass"
    )


def _stateless_init(init: Callable[..., Any]) -> Callable[..., tuple[Any, Any]]:
    return lambda rng, *a, **k: (init(rng, *a, **k), {})


def _takes_rng(apply: Callable[..., Any], position: int) -> bool:
    """Whether ``apply`` takes ``rng`` as its ``position``-th positional argument.

    ``hk.without_apply_rng`` keeps the object's type (``Transformed``,
    ``TransformedWithState``, ``MultiTransformed[WithState]``) but wraps
    ``apply`` in a function whose ``__signature__`` lacks ``rng``: ``(params,
    state, *args)`` instead of ``(params, state, rng, *args)``. Only the slot
    right after params (and state) is looked at, so a user argument that
    happens to be called ``rng`` does not count.
    """
    try:
        parameters = list(inspect.signature(apply).parameters.values())
    except (TypeError, ValueError):
        return True  # no signature to read: Haiku's own apply always has one, so assume the plain transform
    return len(parameters) > position and parameters[position].name == "rng"


def _stateless_apply(apply: Callable[..., Any]) -> ApplyFn:
    if _takes_rng(apply, 1):
        return lambda params, state, rng, *a, **k: (apply(params, rng, *a, **k), state)
    return lambda params, state, rng, *a, **k: (apply(params, *a, **k), state)


def _stateful_apply(apply: Callable[..., Any]) -> ApplyFn:
    if _takes_rng(apply, 2):
        return apply
    return lambda params, state, rng, *a, **k: apply(params, state, *a, **k)


def _multi(obj: Any) -> HaikuModel:
    stateful = isinstance(obj, hk.MultiTransformedWithState)
    init = obj.init if stateful else _stateless_init(obj.init)
    tree = obj.apply
    named = isinstance(tree, Mapping)
    items = list(tree.items()) if named else [(str(i), fn) for i, fn in enumerate(jax.tree.leaves(tree))]
    wrap = _stateful_apply if stateful else _stateless_apply
    methods = {name: wrap(fn) for name, fn in items}
    return HaikuModel(type(obj).__name__, init, methods, False, named_methods=named)
