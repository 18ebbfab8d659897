"""``hk.PRNGSequence`` -> an exact plain-Python key sequence (emitted once per file).

Flax has no key iterator: Linen modules draw keys by stream name
(``self.make_rng``), and scripts split keys by hand. Code that iterates a key
sequence (``rng = hk.PRNGSequence(key)``; ``hk.dropout(next(rng), rate, x)``;
``params = net.init(next(rng), x)``) keeps working, with the very same keys,
through a ten-line class that reproduces Haiku's stream:

* ``PRNGSequence(seed)`` takes a key, an ``int`` seed or an ``int32`` scalar
  (both become ``jax.random.PRNGKey(seed)``), or Haiku's ``(key, subkeys)`` state;
* ``reserve(n)`` splits ``(key, *subkeys) = jax.random.split(key, n + 1)`` and
  queues the subkeys; ``next(seq)`` pops the oldest one, reserving one key when
  the queue is empty (Haiku's default ``rng_reserve_size``); ``take(n)`` tops the
  queue up to ``n`` and pops ``n``.

Example::

    rng = hk.PRNGSequence(42)            ->  rng = PRNGSequence(42)
    net.init(next(rng), x)               ->  net.init(next(rng), x)   # the same key

``hk.config`` with a larger ``rng_reserve_size`` changes Haiku's keys; the helper
keeps the default (1), which is what every Haiku program that never sets it sees.
It is plain Python over ``jax.random``: inside a Linen method it is traced like
the Haiku original, and it never touches Flax's RNG streams.
"""

from __future__ import annotations

from flaxify.migrate.rewrite import JAX_IMPORT, ImportSpec

QUALNAME = "haiku.PRNGSequence"
CLASS_NAME = "PRNGSequence"

CLASS_SOURCE = '''\
class PRNGSequence:
    """Haiku's hk.PRNGSequence: the same keys in the same order (reserve splits key -> (key, *subkeys))."""

    def __init__(self, key_or_seed):
        if isinstance(key_or_seed, tuple):  # Haiku's internal_state: (key, subkeys)
            self._key, subkeys = key_or_seed
            self._subkeys = collections.deque(subkeys)
            return
        if isinstance(key_or_seed, int) or (
            getattr(key_or_seed, "shape", None) == () and getattr(key_or_seed, "dtype", None) == {jnp}.int32
        ):
            key_or_seed = jax.random.PRNGKey(key_or_seed)
        self._key = key_or_seed
        self._subkeys = collections.deque()

    def reserve(self, num):
        """Splits ``num`` more keys off for later ``next`` calls."""
        if num > 0:
            new_keys = tuple(jax.random.split(self._key, num + 1))
            self._key = new_keys[0]
            self._subkeys.extend(new_keys[1:])

    @property
    def internal_state(self):
        return self._key, tuple(self._subkeys)

    def __iter__(self):
        return self

    def __next__(self):
        if not self._subkeys:
            self.reserve(1)
        return self._subkeys.popleft()

    next = __next__

    def take(self, num):
        """The next ``num`` keys, split at once."""
        self.reserve(max(num - len(self._subkeys), 0))
        return tuple(next(self) for _ in range(num))
'''

CLASS_IMPORTS: tuple[ImportSpec, ...] = (JAX_IMPORT, ImportSpec("collections", None, None))


def helper_source(tail: str, *, jnp: str = "jnp") -> tuple[str, str, tuple[ImportSpec, ...]] | None:
    """``(class name, source, imports)`` of the key-sequence helper for ``hk.PRNGSequence``, else None."""
    if tail != CLASS_NAME:
        return None
    return CLASS_NAME, CLASS_SOURCE.format(jnp=jnp), CLASS_IMPORTS


__all__ = ["CLASS_NAME", "QUALNAME", "helper_source"]
