"""One comparison session: both models wrapped, initialised, mapped, and callable.

A :class:`Session` holds what every phase needs (Haiku params and state, the
Flax template, the mapping plan) and builds the two call functions that the
phases jit: Haiku ``apply(params, state, rng, *x)`` and Flax
``apply(variables, *x, mutable=...)``, both returning ``(outputs, state)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import flax.linen as nn
import jax
import numpy as np

from flaxify.equivalence import modes
from flaxify.equivalence.errors import CheckUsageError, ModelRaisedError
from flaxify.equivalence.flax_side import merge_trees, module_table
from flaxify.equivalence.haiku_side import HaikuModel
from flaxify.equivalence.mapping import MappingPlan, build_plan
from flaxify.equivalence.numerics import LeafDiff, compare_trees


@dataclass(frozen=True)
class Method:
    """One Haiku apply function paired with a Flax method, with its inputs and kwargs."""

    name: str
    flax_name: str
    inputs: list[Any]
    kwargs: dict[str, Any]


def user_call(what: str, fn: Callable[[], Any]) -> Any:
    """Runs user code, turning its exceptions into a usage error that says which call failed."""
    try:
        return fn()
    except CheckUsageError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure in user code is reported, not a traceback
        raise ModelRaisedError(f"{what} raised {type(exc).__name__}: {exc}") from exc


class Session:
    """State shared by the phases of one comparison."""

    def __init__(
        self,
        hk_model: HaikuModel,
        module: nn.Module,
        pairs: list[Method],
        devices: list[jax.Device],
        precision: str,
        rtol: float | None,
        atol: float | None,
        seed: int,
        haiku_variables: tuple[Any, Any] | None = None,
    ) -> None:
        self.hk, self.module, self.pairs, self.devices = hk_model, module, pairs, devices
        self.given = haiku_variables
        self.precision, self.rtol, self.atol = precision, rtol, atol
        self.rng = jax.random.PRNGKey(seed)
        self.notes: list[str] = []
        self.init_call = pairs[0]
        self.probe_cases: dict[tuple[str, str], tuple[list[Any], Any]] = {}  # (method, probe) -> (inputs, params)
        self.variables: Any = None  # the mapped Flax variables, once the trees map

    def init_kwargs(self, m: Method) -> dict[str, Any]:
        """Training mode when the call has a mode flag: Haiku BatchNorm only creates its state then."""
        return modes.mode_kwargs(m.kwargs, training=True) or m.kwargs

    def eval_kwargs(self, m: Method) -> dict[str, Any]:
        """Evaluation (deterministic) mode when the call has a mode flag."""
        return modes.mode_kwargs(m.kwargs, training=False) or m.kwargs

    def setup(self) -> MappingPlan:
        """Initialises Haiku (unless variables were given), shapes the Flax tree, maps one onto the other."""
        first = self.init_call
        if self.given is not None:
            self.params, self.state = self.given[0], self.given[1] or {}
        else:
            kwargs = self.init_kwargs(first)
            # Jitted: Haiku's init run op by op takes seconds for a small transformer.
            init = jax.jit(lambda rng, *xs: self.hk.init(rng, *xs, **kwargs))
            what = "Haiku init"
            if first.name not in ("init", "__call__"):  # a multi_transform's init, fed another method's inputs
                what += f" (given the inputs of {first.name!r}; if init takes others, add --input init=SPEC)"
            self.params, self.state = jax.device_get(user_call(what, lambda: init(self.rng, *first.inputs)))
        rngs = {"params": self.rng, "dropout": self.rng}
        trees = [
            user_call(
                f"Flax init ({m.flax_name})",
                lambda m=m: jax.eval_shape(
                    lambda r: self.module.init(r, *m.inputs, method=m.flax_name, **self.init_kwargs(m)), rngs
                ),
            )
            for m in self.pairs
        ]
        # `sow` output is a by-product of the call, not model state: never mapped.
        self.template = {c: v for c, v in merge_trees(trees).items() if c != "intermediates"}
        head = self.pairs[0]
        self.table = user_call(
            "Flax init",
            lambda: module_table(self.module, rngs, *head.inputs, method=head.flax_name, **self.init_kwargs(head)),
        )
        self.collections = [c for c in self.template if c != "params"]
        self.plan = build_plan(
            self.params, self.state, self.template, root_is_module=self.hk.root_is_module, flax_modules=self.table
        )
        return self.plan

    def hk_call(self, m: Method, kwargs: dict[str, Any], rng: Any = "default") -> Callable[..., Any]:
        """``(params, state, *xs) -> (outputs, state)`` for one Haiku method (``rng=None`` probes for RNG use)."""
        apply, key = self.hk.methods[m.name], self.rng if rng == "default" else rng
        return lambda params, state, *xs: apply(params, state, key, *xs, **kwargs)

    def fx_call(self, m: Method, kwargs: dict[str, Any]) -> Callable[..., Any]:
        """``(variables, *xs) -> (outputs, updated collections)`` for one Flax method."""
        mutable = self.collections or False

        def call(variables: Any, *xs: Any) -> tuple[Any, Any]:
            res = self.module.apply(
                variables, *xs, method=m.flax_name, mutable=mutable, rngs={"dropout": self.rng}, **kwargs
            )
            return res if mutable else (res, {})

        return call

    def leaf_diffs(self, hk_out: Any, fx_out: Any) -> list[LeafDiff]:
        """Output leaves compared pairwise, named after Haiku's output structure."""
        named = jax.tree_util.tree_flatten_with_path(hk_out)[0]
        names = ["out" + jax.tree_util.keystr(p) for p, _ in named]
        return compare_trees(
            names,
            [np.asarray(v) for _, v in named],
            [np.asarray(v) for v in jax.tree.leaves(fx_out)],
            rtol=self.rtol,
            atol=self.atol,
        )
