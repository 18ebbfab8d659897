"""Replaying Haiku's key sequence into a Flax model, so stochastic outputs compare bit for bit.

Haiku draws every key of an ``apply`` from one ``hk.PRNGSequence`` built from
the apply key, in call order (``hk.next_rng_key()`` is ``next(seq)``). Linen
derives each key from the stream key, the module path and a per-scope counter
(``self.make_rng("dropout")``), so a correct port draws different numbers and
its outputs cannot be compared as they are.

:func:`haiku_key_order` wraps :meth:`flax.linen.Module.make_rng` while a Flax
call is *traced*: each draw still runs Flax's own ``make_rng`` (its errors and
counters stay as they are), then returns the next key of a fresh
``hk.PRNGSequence`` over the same apply key instead. Haiku's own class is used,
so the split order (and ``hk.config``'s reserve size) is Haiku's by
construction. When both models draw keys in the same order (plain modules,
``hk.dropout`` ported to ``nn.Dropout``), both see the same keys and the
outputs are comparable exactly.

Inside a lifted transform (``nn.scan``/``nn.vmap`` with ``split_rngs``, the
``layer_stack`` helper, ``nn.remat``, ...) Flax splits or folds keys by its own
rule and the body is traced once for all steps, so no Python-side sequence can
reproduce Haiku's per-layer keys. Such draws keep Flax's key and are recorded in
:attr:`KeyReplay.lifted`; the caller must then not compare the call.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import flax.linen as nn
import haiku as hk
import jax

_LOCK = threading.RLock()  # one patch of the class attribute at a time


@dataclass
class KeyReplay:
    """What the wrapped ``make_rng`` saw over every trace of one call."""

    replayed: int = 0  # draws answered with Haiku's next key
    lifted: list[str] = field(default_factory=list)  # module paths that drew inside a lifted transform

    @property
    def drew(self) -> bool:
        """True when the Flax side asked for any key."""
        return bool(self.replayed or self.lifted)

    @property
    def aligned(self) -> bool:
        """True when every key the Flax side drew was Haiku's (none inside a lifted transform)."""
        return not self.lifted


def in_lifted_scope(module: nn.Module) -> bool:
    """True when ``module`` runs inside a Linen lifted transform (scan, vmap, remat, cond, ...).

    ``flax.core.lift.pack`` gives the inner scope a debug path that names the
    transform (``scan(layers)``); outside lifted transforms the debug path is
    the plain module path.
    """
    scope = module.scope
    return scope is not None and tuple(scope.debug_path) != tuple(scope.path)


@contextlib.contextmanager
def haiku_key_order(key: jax.Array, replay: KeyReplay) -> Iterator[KeyReplay]:
    """Within the block, Flax ``make_rng`` outside lifted transforms returns Haiku's keys from ``key`` in call order.

    A new ``hk.PRNGSequence(key)`` starts on entry, as a Haiku ``apply`` starts
    one per call; enter the block once per traced Flax call.
    """
    original = nn.Module.make_rng
    sequence = hk.PRNGSequence(key)

    def make_rng(self: nn.Module, name: str = "params") -> jax.Array:
        flax_key = original(self, name)  # Flax's checks and counters run as usual
        if in_lifted_scope(self):
            replay.lifted.append("/".join(self.scope.debug_path) if self.scope else type(self).__name__)
            return flax_key
        replay.replayed += 1
        return next(sequence)

    with _LOCK:
        nn.Module.make_rng = make_rng  # type: ignore[method-assign]
        try:
            yield replay
        finally:
            nn.Module.make_rng = original  # type: ignore[method-assign]


def replaying(fn: Callable[..., Any], key: jax.Array) -> tuple[Callable[..., Any], KeyReplay]:
    """``fn`` (a jitted Flax call) run with Haiku's key order on every call, and the record of its traces.

    The context is entered on every call because ``jax.jit`` traces lazily
    and again for new shapes: whenever it traces, the keys are Haiku's.
    """
    replay = KeyReplay()

    def call(*args: Any) -> Any:
        with haiku_key_order(key, replay):
            return fn(*args)

    return call, replay


__all__ = ["KeyReplay", "haiku_key_order", "in_lifted_scope", "replaying"]
