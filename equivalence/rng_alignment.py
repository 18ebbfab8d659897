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

Two Haiku calls use the sequence otherwise, and the replay follows a record of
what the Haiku apply did (:func:`trace_haiku_draws`, one trace of the apply):

* ``hk.next_rng_keys(n)`` is ``seq.take(n)``: one split of the sequence's key
  into ``n + 1`` (its ``n`` keys are ``split(K, n + 1)[1:]``), not ``n`` draws.
  Its port is ``jax.random.split(self.make_rng("dropout"), n)``, and no key
  ``k`` gives ``split(k, n) == split(K, n + 1)[1:]`` (threefry keys are
  ``threefry(k, i)``: that would be a collision of the hash). So the draw that
  Haiku's record says was a ``take(n)`` hands Flax a stand-in key, and the one
  ``jax.random.split(stand_in, n)`` that follows returns Haiku's ``n`` keys. A
  stand-in used any other way (not split, split into another number, or a
  second draw before the split) is recorded in :attr:`KeyReplay.unsplit`: the
  models then draw keys in another number, and the caller must not compare.
* ``hk.reserve_rng_keys(n)`` splits ``n`` keys ahead, which changes the keys
  that later draws return; its port deletes the statement. The replay reserves
  the same keys at the same point of the record.

Inside a lifted transform (``nn.scan``/``nn.vmap`` with ``split_rngs``, the
``layer_stack`` helper, ``nn.remat``, ...) Flax splits or folds keys by its own
rule and the body is traced once for all steps, so no Python-side sequence can
reproduce Haiku's per-layer keys. Such draws keep Flax's key and are recorded in
:attr:`KeyReplay.lifted`; the caller must then not compare the call.
"""

from __future__ import annotations

import collections
import contextlib
import operator
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import flax.linen as nn
import haiku as hk
import jax
import jax.numpy as jnp

_LOCK = threading.RLock()  # one patch of the class attributes at a time

DrawKind = Literal["next", "take", "reserve", "replace"]


@dataclass(frozen=True)
class Draw:
    """One use of the apply's key sequence by Haiku, in call order.

    ``next``: one key (``hk.next_rng_key``, ``hk.maybe_next_rng_key``);
    ``take``: ``hk.next_rng_keys(num)``; ``reserve``: ``hk.reserve_rng_keys(num)``
    (or ``hk.experimental.optimize_rng_use``); ``replace``: a Haiku lifted
    transform (``hk.vmap``, ``hk.cond``, ...) wrote the sequence's state back,
    after which the record says nothing about the keys.
    """

    kind: DrawKind
    num: int = 1


@dataclass
class KeyReplay:
    """What the wrapped ``make_rng`` saw over every trace of one call."""

    replayed: int = 0  # draws answered with Haiku's keys
    lifted: list[str] = field(default_factory=list)  # module paths that drew inside a lifted transform
    # Module paths whose draw stood for hk.next_rng_keys(n) but whose key was not split into n keys.
    unsplit: list[str] = field(default_factory=list)

    @property
    def drew(self) -> bool:
        """True when the Flax side asked for any key."""
        return bool(self.replayed or self.lifted)

    @property
    def aligned(self) -> bool:
        """True when every key the Flax side drew was Haiku's (none lifted, every ``next_rng_keys`` split)."""
        return not self.lifted and not self.unsplit


def in_lifted_scope(module: nn.Module) -> bool:
    """True when ``module`` runs inside a Linen lifted transform (scan, vmap, remat, cond, ...).

    ``flax.core.lift.pack`` gives the inner scope a debug path that names the
    transform (``scan(layers)``); outside lifted transforms the debug path is
    the plain module path.
    """
    scope = module.scope
    return scope is not None and tuple(scope.debug_path) != tuple(scope.path)


def _module_path(module: nn.Module) -> str:
    return "/".join(module.scope.debug_path) if module.scope else type(module).__name__


@contextlib.contextmanager
def _recording(record: list[Draw], is_apply_key: Callable[[Any], bool]) -> Iterator[None]:
    """Within the block, uses of the ``hk.PRNGSequence`` built from the apply key are appended to ``record``.

    Only the outermost call counts (``take`` reserves and calls ``next``
    itself), and only on the apply's own sequence: one a model builds from a
    seed of its own (``hk.PRNGSequence(42)``) is ordinary code on both sides.
    """
    cls = hk.PRNGSequence
    originals = {name: cls.__dict__[name] for name in ("__init__", "__next__", "next", "take", "reserve")}
    replace_state = cls.__dict__["replace_internal_state"]
    applies: list[hk.PRNGSequence] = []
    depth = [0]

    def counted(kind: DrawKind, method: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(self: hk.PRNGSequence, *args: Any) -> Any:
            if depth[0] == 0 and any(self is s for s in applies):
                record.append(Draw(kind, int(args[0]) if args else 1))
            depth[0] += 1
            try:
                return method(self, *args)
            finally:
                depth[0] -= 1

        return wrapper

    def init(self: hk.PRNGSequence, key_or_seed: Any) -> None:
        originals["__init__"](self, key_or_seed)
        if is_apply_key(key_or_seed):
            applies.append(self)

    def replace(self: hk.PRNGSequence, state: Any) -> None:
        if any(self is s for s in applies):
            record.append(Draw("replace", 0))
        replace_state(self, state)

    patches = {
        "__init__": init,
        "__next__": counted("next", originals["__next__"]),
        "next": counted("next", originals["next"]),
        "take": counted("take", originals["take"]),
        "reserve": counted("reserve", originals["reserve"]),
        "replace_internal_state": replace,
    }
    with _LOCK:
        for name, fn in patches.items():
            setattr(cls, name, fn)
        try:
            yield
        finally:
            for name, fn in {**originals, "replace_internal_state": replace_state}.items():
                setattr(cls, name, fn)


def trace_haiku_draws(fn: Callable[[jax.Array], Any], key: jax.Array) -> tuple[Any, tuple[Draw, ...]]:
    """``jax.make_jaxpr(fn)(key)`` and what the Haiku apply inside ``fn`` did with the sequence built from ``key``.

    ``fn`` calls a Haiku ``apply`` with its argument as the apply key (Haiku
    builds the apply's ``hk.PRNGSequence`` from that very object).
    """
    record: list[Draw] = []
    traced: list[Any] = []

    def call(k: jax.Array) -> Any:
        traced.append(k)
        return fn(k)

    with _recording(record, lambda k: any(k is t for t in traced)):
        closed = jax.make_jaxpr(call)(key)
    return closed, tuple(record)


class _Cursor:
    """Haiku's key sequence over the apply key, advanced as Haiku's record says."""

    def __init__(self, key: jax.Array, draws: tuple[Draw, ...] | None, replay: KeyReplay) -> None:
        self.sequence = hk.PRNGSequence(key)
        # None: no record, or past a state Haiku rewrote: every draw is one key.
        self.events: collections.deque[Draw] | None = None if draws is None else collections.deque(draws)
        self.replay = replay
        self.pending: tuple[jax.Array, int, str] | None = None  # (stand-in key, n, module path)

    def draw(self, where: str) -> jax.Array:
        """The key for the next ``make_rng``: Haiku's next key, or a stand-in for ``hk.next_rng_keys(n)``."""
        self.abandon()  # a second draw before the stand-in was split
        event = self._next_event()
        if event is None or event.kind == "next":
            return next(self.sequence)
        stand_in = jax.random.clone(self.sequence.internal_state[0])  # a fresh object: its identity marks it
        self.pending = (stand_in, event.num, where)
        return stand_in

    def split(self, key: Any, num: Any) -> jax.Array | None:
        """Haiku's ``take(num)`` when ``key`` is the pending stand-in split into its ``num`` keys, else None."""
        if self.pending is None or key is not self.pending[0]:
            return None
        _, wanted, _ = self.pending
        try:
            count = operator.index(num)  # an int, or a NumPy integer (a shape tuple is another call)
        except TypeError:
            count = None
        if count != wanted:
            self.abandon()
            return None
        self.pending = None
        return jnp.stack(self.sequence.take(wanted))

    def abandon(self) -> None:
        """The pending stand-in was used otherwise: the models draw keys in another number."""
        if self.pending is not None:
            self.replay.unsplit.append(self.pending[2])
            self.pending = None

    def _next_event(self) -> Draw | None:
        """The record's next draw, after applying the reserves that preceded it."""
        while self.events:
            event = self.events.popleft()
            if event.kind == "reserve":
                self.sequence.reserve(event.num)
            elif event.kind == "replace":
                self.events = None
            else:
                return event
        return None


@contextlib.contextmanager
def haiku_key_order(key: jax.Array, replay: KeyReplay, draws: tuple[Draw, ...] | None = None) -> Iterator[KeyReplay]:
    """Within the block, Flax ``make_rng`` outside lifted transforms returns Haiku's keys from ``key`` in call order.

    A new ``hk.PRNGSequence(key)`` starts on entry, as a Haiku ``apply`` starts
    one per call; enter the block once per traced Flax call. ``draws`` is the
    Haiku apply's record (:func:`trace_haiku_draws`); without it every draw is
    one ``next`` of the sequence.
    """
    original_make_rng, original_split = nn.Module.make_rng, jax.random.split
    cursor = _Cursor(key, draws, replay)

    def make_rng(self: nn.Module, name: str = "params") -> jax.Array:
        flax_key = original_make_rng(self, name)  # Flax's checks and counters run as usual
        if in_lifted_scope(self):
            replay.lifted.append(_module_path(self))
            return flax_key
        replay.replayed += 1
        return cursor.draw(_module_path(self))

    def split(key: Any, num: Any = 2) -> jax.Array:
        haiku_keys = cursor.split(key, num)
        return original_split(key, num) if haiku_keys is None else haiku_keys

    with _LOCK:
        nn.Module.make_rng = make_rng  # type: ignore[method-assign]
        jax.random.split = split  # the port of hk.next_rng_keys(n) calls it as jax.random.split
        try:
            yield replay
            cursor.abandon()  # a stand-in never split
        finally:
            nn.Module.make_rng = original_make_rng  # type: ignore[method-assign]
            jax.random.split = original_split


def replaying(
    fn: Callable[..., Any], key: jax.Array, draws: tuple[Draw, ...] | None = None
) -> tuple[Callable[..., Any], KeyReplay]:
    """``fn`` (a jitted Flax call) run with Haiku's key order on every call, and the record of its traces.

    The context is entered on every call because ``jax.jit`` traces lazily
    and again for new shapes: whenever it traces, the keys are Haiku's.
    """
    replay = KeyReplay()

    def call(*args: Any) -> Any:
        with haiku_key_order(key, replay, draws):
            return fn(*args)

    return call, replay


__all__ = ["Draw", "KeyReplay", "haiku_key_order", "in_lifted_scope", "replaying", "trace_haiku_draws"]
