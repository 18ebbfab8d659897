"""``hk.EMAParamsTree`` -> an exact Linen port (emitted once per file).

Haiku's ``EMAParamsTree(decay, zero_debias=True, warmup_length=0, ignore_regex="")``
keeps one ``hk.ExponentialMovingAverage`` per leaf of the tree it is called on,
named after the leaf's path ``"<module>/<param>"`` with ``/`` -> ``__`` and
``~`` -> ``_tilde_``, and returns the tree with every leaf replaced by its
(debiased, warmed-up) average; leaves whose path matches ``ignore_regex``
(``re.match``) pass through. The emitted ``EMAParamsTree`` does exactly that
with the exact ``ExponentialMovingAverage`` port (``moving_averages.py``), so
its ``"state"`` collection holds ``ema_params_tree/<module>__<param>:
{counter, hidden, average}`` as Haiku's state does, with Haiku's update rule
and ``init`` semantics.

Haiku reads a two-level ``{module: {param: array}}`` tree (anything deeper
fails in ``jnp.asarray``); the port accepts that and, beyond it, any nested
mapping (a migrated program's nested Flax params), joining the path with
``/`` so that a two-level tree gets Haiku's names. The EMA's state names and
``ignore_regex`` are about the names of the tree it is given: when the
program now passes Flax parameters (``kernel``/``bias``, no ``~``), a
pattern written for Haiku's names (``.*/w$``) no longer matches and a
converted EMA checkpoint's keys need the same renaming, so a given
``ignore_regex`` is rewritten *and* marked with a TODO saying so.

Example::

    hk.EMAParamsTree(0.999)  ->  EMAParamsTree(0.999, name="ema_params_tree")
"""

from __future__ import annotations

from flaxify.migrate.layers_common import Bound, Ctx, Signature, code, flax_call, literal, name_arg
from flaxify.migrate.layers_linear import Args
from flaxify.migrate.rewrite import ImportSpec, Rewrite, Unsupported

EMA_PARAMS_TREE = Signature("hk.EMAParamsTree", ("decay", "zero_debias", "warmup_length", "ignore_regex", "name"))

CLASS_SOURCE = '''class EMAParamsTree({nn}.Module):
    """Haiku's hk.EMAParamsTree: one ExponentialMovingAverage per leaf "module/param", named module__param (~ -> _tilde_)."""

    decay: float
    zero_debias: bool = True
    warmup_length: int = 0
    ignore_regex: str = ""

    @{nn}.compact
    def __call__(self, tree, update_stats=True):
        def maybe_ema(path, value):
            if self.ignore_regex and re.match(self.ignore_regex, path):
                return value
            ema = ExponentialMovingAverage(
                self.decay,
                zero_debias=self.zero_debias,
                warmup_length=self.warmup_length,
                name=path.replace("/", "__").replace("~", "_tilde_"),
            )
            return ema(value, update_stats=update_stats)

        def walk(path, node):
            if isinstance(node, Mapping):
                return {{key: walk(path + [key], value) for key, value in node.items()}}
            return maybe_ema("/".join(path), node)

        return {{name: walk([name], node) for name, node in tree.items()}}
'''

CLASS_IMPORTS = (ImportSpec("re", None, None), ImportSpec("collections.abc", "Mapping", None))

#: Haiku name -> (emitted name, source template, imports), as ``recurrent.HELPERS``.
HELPERS = {"EMAParamsTree": ("EMAParamsTree", CLASS_SOURCE, CLASS_IMPORTS)}
#: The helper builds the exact ExponentialMovingAverage port (moving_averages.py).
DEPENDENCIES = {"EMAParamsTree": ("ExponentialMovingAverage",)}

_REGEX_NOTE = (
    "ignore_regex is matched against the 'module/param' paths of the tree EMAParamsTree is given, and the EMA"
    " state is named after them: a migrated program passing Flax params has Flax names (kernel/bias, no '~'),"
    " so check the pattern and rename the keys of a converted EMA state"
)


def ema_params_tree(bound: Bound, ctx: Ctx) -> Rewrite | Unsupported:
    """``hk.EMAParamsTree(decay, zero_debias, warmup_length, ignore_regex)`` -> the exact helper."""
    if "decay" not in bound:
        return Unsupported("hk.EMAParamsTree needs decay")
    args: Args = [(None, code(bound["decay"]))]
    if "zero_debias" in bound and literal(bound["zero_debias"]) is not True:
        args.append(("zero_debias", code(bound["zero_debias"])))
    if "warmup_length" in bound and literal(bound["warmup_length"]) != 0:
        args.append(("warmup_length", code(bound["warmup_length"])))
    note = None
    if "ignore_regex" in bound and literal(bound["ignore_regex"]) != "":
        args.append(("ignore_regex", code(bound["ignore_regex"])))
        note = _REGEX_NOTE
    return Rewrite(flax_call("EMAParamsTree", args + name_arg(bound, ctx.name)), note=note)


#: Haiku class -> (signature, handler), for ``layers.LAYERS``.
LAYERS = {"EMAParamsTree": (EMA_PARAMS_TREE, ema_params_tree)}
