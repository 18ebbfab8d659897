"""``hk.get_state`` / ``hk.set_state`` inside module classes -> Linen variables.

Haiku state lives next to the parameters in a module's bucket; Linen keeps it
in a named collection. Everything migrated here uses the ``"state"``
collection (the name Haiku's own Flax bridge uses), at the module's path, so
``state["state"]["counter_module"]["count"]`` mirrors Haiku's
``state["counter_module"]["count"]``. ``callsites.py`` passes the collections
back in and makes them mutable (``mutable=list(state)``).

Examples::

    hk.get_state("count", [], jnp.int32, init=jnp.zeros)
        -> self.variable("state", "count", jnp.zeros, [], jnp.int32).value
    hk.get_state("count")                      -> self.get_variable("state", "count")
    hk.set_state("count", count + 1)           -> self.put_variable("state", "count", count + 1)

Haiku's ``init`` returns the *initial* state: a ``set_state`` on an entry that a
``get_state(..., init=...)`` created is not reflected in it. Linen's ``init``
returns the state after the call, so such a ``set_state`` statement is guarded::

    if not self.is_initializing():
        self.put_variable("state", "count", count + 1)

An entry first created by ``set_state`` keeps its value in both. Haiku calls
``init(shape, dtype)`` with ``dtype=jnp.float32`` by default; the dtype is
written out. A Haiku initializer (``hk.initializers.Constant(0.)``) is
converted and called with a ``"params"`` key, only when the entry is created.
"""

from __future__ import annotations

import libcst as cst

from flaxify.migrate.initializers import rewrite_initializer
from flaxify.migrate.layers_common import Resolver, Signature, bind, code, literal
from flaxify.migrate.rewrite import Rewrite, Unsupported

COLLECTION = '"state"'
GET_STATE = Signature("hk.get_state", ("name", "shape", "dtype", "init"))
SET_STATE = Signature("hk.set_state", ("name", "value"))


def literal_name(call: cst.Call, sig: Signature) -> str | None:
    """The state entry's name when it is a string literal, else None."""
    bound = bind(call, sig)
    if isinstance(bound, Unsupported) or "name" not in bound:
        return None
    value = literal(bound["name"])
    return value if isinstance(value, str) else None


def rewrite_get_state(
    call: cst.Call, init_qualname: str | None, *, jnp: str, nn: str, resolver: Resolver | None
) -> Rewrite | Unsupported:
    """``hk.get_state(name, shape, dtype, init)`` -> ``self.variable(...).value`` (or a read)."""
    bound = bind(call, GET_STATE)
    if isinstance(bound, Unsupported):
        return bound
    if "name" not in bound:
        return Unsupported("hk.get_state needs a name")
    name = code(bound["name"])
    if "init" not in bound or literal(bound["init"]) is None:
        return Rewrite(cst.parse_expression(f"self.get_variable({COLLECTION}, {name})"))
    shape = code(bound["shape"]) if "shape" in bound else "None"
    dtype = code(bound["dtype"]) if "dtype" in bound else f"{jnp}.float32"
    init = bound["init"]
    if init_qualname is not None and init_qualname.startswith("haiku."):
        flax_init = rewrite_initializer(init, init_qualname, nn=nn, jnp=jnp, resolver=resolver)
        if isinstance(flax_init, Unsupported):
            return Unsupported(f"hk.get_state(init=...): {flax_init.reason}")
        create = f'lambda: {code(flax_init.expr)}(self.make_rng("params"), {shape}, {dtype})'
        text = f"self.variable({COLLECTION}, {name}, {create}).value"
        return Rewrite(cst.parse_expression(text), flax_init.imports)
    text = f"self.variable({COLLECTION}, {name}, {_callable(init)}, {shape}, {dtype}).value"
    return Rewrite(cst.parse_expression(text))


def rewrite_set_state(call: cst.Call) -> Rewrite | Unsupported:
    """``hk.set_state(name, value)`` -> ``self.put_variable("state", name, value)``."""
    bound = bind(call, SET_STATE)
    if isinstance(bound, Unsupported):
        return bound
    if "name" not in bound or "value" not in bound:
        return Unsupported("hk.set_state needs a name and a value")
    return Rewrite(cst.parse_expression(f"self.put_variable({COLLECTION}, {code(bound['name'])}, {code(bound['value'])})"))


def guarded(statement: cst.SimpleStatementLine) -> cst.If:
    """``if not self.is_initializing(): <statement>`` (Haiku's init keeps the initial state)."""
    inner = statement.with_changes(leading_lines=[])
    return cst.If(
        test=cst.parse_expression("not self.is_initializing()"),
        body=cst.IndentedBlock([inner]),
        leading_lines=statement.leading_lines,
    )


def _callable(init: cst.BaseExpression) -> str:
    text = code(init)
    return f"({text})" if isinstance(init, (cst.Lambda, cst.IfExp)) and not init.lpar else text
