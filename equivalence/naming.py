"""The by-name rule: a Haiku module path becomes a Flax module path.

``mlp/~/linear_0`` → ``('mlp', 'linear_0')``; ``ae/~encode/linear`` →
``('ae', 'encode', 'linear')`` (an ``nn.compact_name_scope`` sub-scope); the
top-level ``'~'`` bucket (bare ``hk.get_parameter`` in a transformed function)
→ ``()``, the Flax root. When the Haiku side is an ``hk.Module`` subclass the
module's own name is the first component and Flax's root has no name, so it is
dropped.
"""

from __future__ import annotations

from flaxify.equivalence.trees import FlaxPath


def flax_module_path(haiku_module: str, *, root_is_module: bool) -> FlaxPath:
    """Returns the Flax module path that the by-name rule assigns to ``haiku_module``."""
    parts = [p[1:] if p.startswith("~") else p for p in haiku_module.split("/") if p != "~"]
    if root_is_module and parts:
        parts = parts[1:]
    return tuple(parts)


def shared_root(haiku_modules: list[str]) -> str | None:
    """The first path component shared by every Haiku module, if there is one.

    A transformed function that only calls ``MyNet()(x)`` puts everything under
    ``my_net/``; a Flax twin that *is* ``MyNet`` has no such level. The mapper
    tries both readings and keeps the one that matches more leaves by name.
    """
    firsts = {m.split("/", 1)[0] for m in haiku_modules}
    if len(firsts) != 1:
        return None
    root = firsts.pop()
    return None if root == "~" else root
