"""Haiku's RNG calls inside module classes -> Linen RNG streams.

Haiku draws every key from one sequence (``hk.next_rng_key()``); Linen draws
them by stream name. Everything migrated here uses the ``"dropout"`` stream,
the one ``nn.Dropout`` reads, so one ``rngs={"dropout": rng}`` at the
``apply`` call site (``callsites.py``) feeds the whole model; during ``init``
Linen falls back to the ``"params"`` key, as Haiku draws from its init key.
Key *values* differ from Haiku's (another derivation), so stochastic outputs
match in distribution, not bit for bit; an explicit key keeps the exact mask.

Examples::

    hk.next_rng_key()                         -> self.make_rng("dropout")
    hk.next_rng_keys(3)                       -> jax.random.split(self.make_rng("dropout"), 3)
    hk.maybe_next_rng_key()                   -> (self.make_rng("dropout") if self.has_rng("dropout") else None)
    hk.dropout(hk.next_rng_key(), 0.1, x)     -> nn.Dropout(0.1, deterministic=False)(x)
    hk.dropout(hk.next_rng_key(), 0.1 if training else 0.0, x)
                                              -> nn.Dropout(0.1, deterministic=not training)(x)
    hk.dropout(key, rate, x, broadcast_dims=(0,))
                                              -> nn.Dropout(rate, broadcast_dims=(0,), deterministic=False)(x, rng=key)
    hk.reserve_rng_keys(2)                    -> (the statement is deleted)

``hk.reserve_rng_keys(n)`` only splits ``n`` keys of Haiku's sequence ahead
of time; Linen has no sequence to split. Deleting it changes which keys the
later draws get, not how they are distributed, as for every key above. Only
the bare statement in a module method is deleted, and only when no comment
sits on it (deleting the line would delete the comment); any other use
(its value read, several statements on the line) keeps the TODO.

The mask is the same function of the key in both libraries (Haiku
``keep * x / keep_rate``, Flax ``select(keep, x / keep_rate, 0)``), and a rate
of 0 returns ``x`` unchanged in both. ``nn.Dropout`` needs a Python-static
rate; a traced rate raises at trace time instead of computing something else.
"""

from __future__ import annotations

from collections.abc import Callable

import libcst as cst

from flaxify.migrate.layers_common import Signature, bind, code, literal
from flaxify.migrate.rewrite import JAX_IMPORT, Rewrite, Unsupported

STREAM = '"dropout"'
KEY_CALLS = frozenset({"haiku.next_rng_key", "haiku.maybe_next_rng_key", "haiku.next_rng_keys"})
DROPOUT = Signature("hk.dropout", ("rng", "rate", "x", "broadcast_dims"))
RESERVE = "haiku.reserve_rng_keys"


def rewrite_key_call(call: cst.Call, qualname: str) -> Rewrite | Unsupported:
    """``hk.next_rng_key()`` / ``hk.next_rng_keys(n)`` / ``hk.maybe_next_rng_key()`` in a module method."""
    make = f"self.make_rng({STREAM})"
    if qualname == "haiku.next_rng_keys":
        if len(call.args) != 1 or call.args[0].star:
            return Unsupported("hk.next_rng_keys takes one argument (the number of keys)")
        return Rewrite(cst.parse_expression(f"jax.random.split({make}, {code(call.args[0].value)})"), (JAX_IMPORT,))
    if call.args:
        return Unsupported(f"hk.{qualname.removeprefix('haiku.')} takes no arguments")
    if qualname == "haiku.maybe_next_rng_key":
        return Rewrite(cst.parse_expression(f"({make} if self.has_rng({STREAM}) else None)"))
    return Rewrite(cst.parse_expression(make))


def is_deletable_reserve(line: cst.SimpleStatementLine, haiku_name: Callable[[cst.CSTNode], str | None]) -> bool:
    """``line`` is the bare statement ``hk.reserve_rng_keys(n)`` (or ``num=n``), with no comment to lose.

    ``haiku_name`` resolves a callee to its Haiku qualified name (any import
    spelling); it must be given nodes of the original tree.
    """
    if len(line.body) != 1 or not isinstance(line.body[0], cst.Expr):
        return False
    call = line.body[0].value
    if not isinstance(call, cst.Call) or haiku_name(call.func) != RESERVE:
        return False
    arg = call.args[0] if len(call.args) == 1 else None
    if arg is None or arg.star or (arg.keyword is not None and arg.keyword.value != "num"):
        return False
    comments = [line.trailing_whitespace.comment] + [empty.comment for empty in line.leading_lines]
    return all(comment is None for comment in comments)


def rewrite_dropout(call: cst.Call, *, implicit_key: bool, nn: str) -> Rewrite | Unsupported:
    """``hk.dropout(rng, rate, x)`` -> ``nn.Dropout(...)(x)``.

    ``implicit_key`` says the Haiku key argument was ``hk.next_rng_key()``: the
    Flax layer then draws from the ``"dropout"`` stream itself.
    """
    bound = bind(call, DROPOUT)
    if isinstance(bound, Unsupported):
        return bound
    if not all(k in bound for k in ("rng", "rate", "x")):
        return Unsupported("hk.dropout needs rng, rate and x")
    rate, deterministic = _rate_and_mode(bound["rate"])
    ctor = [rate]
    if "broadcast_dims" in bound and literal(bound["broadcast_dims"]) != ():
        ctor.append(f"broadcast_dims={code(bound['broadcast_dims'])}")
    ctor.append(f"deterministic={deterministic}")
    args = [code(bound["x"])] + ([] if implicit_key else [f"rng={code(bound['rng'])}"])
    return Rewrite(cst.parse_expression(f"{nn}.Dropout({', '.join(ctor)})({', '.join(args)})"))


def _rate_and_mode(rate: cst.BaseExpression) -> tuple[str, str]:
    """``r if training else 0.`` -> ``("r", "not training")``; any other rate is always applied."""
    if isinstance(rate, cst.IfExp) and not rate.lpar:
        test = code(rate.test)
        simple = isinstance(rate.test, (cst.Name, cst.Attribute, cst.Call, cst.Subscript))
        if literal(rate.orelse) == 0 and literal(rate.body) != 0:
            if isinstance(rate.test, cst.UnaryOperation) and isinstance(rate.test.operator, cst.Not):
                return code(rate.body), code(rate.test.expression)
            return code(rate.body), f"not {test}" if simple else f"not ({test})"
        if literal(rate.body) == 0 and literal(rate.orelse) != 0:
            return code(rate.orelse), test
    return code(rate), "False"
