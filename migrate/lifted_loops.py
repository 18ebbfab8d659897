"""``hk.fori_loop`` / ``hk.while_loop`` -> ``jax.lax`` loops or Linen lifted loops.

Haiku's loops (``haiku/_src/stateful.py``) are ``jax.lax.fori_loop`` /
``jax.lax.while_loop`` with Haiku's state threaded through the carry; at init
``hk.fori_loop`` runs ``body_fun(lower, init_val)`` once eagerly (so that the
parameters the body creates exist before the loop traces it) and loops over the
rest, and ``hk.while_loop`` refuses to run (its docs ask for an
``hk.running_init()`` branch that calls the body once).

Two rewrites, both exact:

1. **Pure loop functions** (:class:`PureLoopsCommand`, a pass that runs before
   the module passes). When every loop function is a lambda or a local ``def``
   that only reads its own locals and names imported from ``jax`` / ``numpy`` /
   ``math`` / ``operator`` / ``functools`` or builtins (no modules, parameters,
   state, RNG or ``self``), Haiku threads nothing and the loop *is* the
   ``jax.lax`` one::

       y = hk.fori_loop(0, 3, lambda i, v: v * 2.0 + i, x)
       ->
       y = jax.lax.fori_loop(0, 3, lambda i, v: v * 2.0 + i, x)

2. **Loop functions that use modules** (inside module methods; dispatched from
   ``lifted.py``). ``hk.while_loop`` becomes ``nn.while_loop`` lifted over the
   calling module (parameters broadcast, read-only, as Haiku forbids creating
   them in the loop)::

       y = hk.while_loop(lambda v: v.sum() < 9.0, lambda v: lin(v) + 1.0, y)
       ->
       y = nn.while_loop(lambda _, val: (lambda v: v.sum() < 9.0)(val), lambda _, val: (lambda v: lin(v) + 1.0)(val), self, y)

   ``hk.fori_loop`` becomes the emitted helper ``fori_loop(self, lower, upper,
   body_fun, init_val)``: Haiku's eager first step at init, then, like
   ``jax.lax.fori_loop``, ``nn.scan`` over the remaining trip count when the
   bounds are concrete (so the loop stays reverse-differentiable, as Haiku's is)
   or ``nn.while_loop`` when they are traced, with the counter converted to the
   bounds' common dtype as JAX does.

Not rewritten: loop functions that call ``hk.get_state`` / ``hk.set_state`` /
RNG APIs / ``hk.BatchNorm`` themselves. Haiku threads state and keys through
the loop carry; in Linen the body would touch the calling module's scope from
inside the lifted loop (Flax rejects that), so the loop stays under a TODO
naming the ``carry_variables`` / ``mdl.variable`` form. (A user module called
in the body that keeps state of its own is not seen here; Flax raises when it
runs.)
"""

from __future__ import annotations


import libcst as cst
from flaxify.migrate.base import FlaxifyCommand, MigrationState
from flaxify.migrate.layers_common import Signature, bind, code, free_name, walk
from flaxify.migrate.lifted import LOOP_CALLS
from flaxify.migrate.rewrite import JAX_IMPORT, ImportSpec, Rewrite, Unsupported
from libcst.metadata import QualifiedNameProvider, ScopeProvider

FORI_LOOP = Signature("hk.fori_loop", ("lower", "upper", "body_fun", "init_val"))
WHILE_LOOP = Signature("hk.while_loop", ("cond_fun", "body_fun", "init_val"))
SIGNATURES = {"haiku.fori_loop": FORI_LOOP, "haiku.while_loop": WHILE_LOOP}
# The functions of each loop, which must all be pure for the jax.lax rewrite.
_FUNCTIONS = {"haiku.fori_loop": ("body_fun",), "haiku.while_loop": ("cond_fun", "body_fun")}
# Haiku APIs whose state or RNG key Haiku threads through the loop carry.
_STATEFUL = frozenset(
    f"haiku.{api}"
    for api in (
        "get_state", "set_state", "next_rng_key", "next_rng_keys", "maybe_next_rng_key", "dropout",
        "BatchNorm", "ExponentialMovingAverage", "EMAParamsTree",
    )
)
_STATEFUL_REASON = (
    "the loop function uses Haiku state or RNG keys, which Haiku threads through the loop carry; Linen needs"
    " them on the lifted module: write nn.while_loop(cond_fn, body_fn, self, init, carry_variables='state',"
    " split_rngs={'dropout': True}) (or nn.scan(..., variable_carry='state') for static bounds) with functions"
    " taking the module first and using mdl.variable / mdl.make_rng"
)
# Free names a pure loop function may read: these never see Haiku's state.
_PURE_PREFIXES = ("jax", "numpy", "math", "operator", "functools", "builtins")

FORI_LOOP_SOURCE = '''def fori_loop(module, lower, upper, body_fun, init_val):
    """Haiku's hk.fori_loop in a Linen module: the first step runs eagerly at init (creating the body's parameters), then a lifted loop."""
    if module.is_initializing():
        init_val = body_fun(lower, init_val)
        lower += 1
    # As jax.lax.fori_loop: the counter takes the bounds' common dtype; concrete
    # bounds scan (reverse-differentiable), traced bounds use a while loop.
    dtype = jax.numpy.promote_types(jax.numpy.asarray(lower).dtype, jax.numpy.asarray(upper).dtype)
    start = jax.lax.convert_element_type(lower, dtype)
    try:
        trip = operator.index(upper) - operator.index(lower)
    except TypeError:
        stop = jax.lax.convert_element_type(upper, dtype)
        loop = {nn}.while_loop(lambda _, c: c[0] < stop, lambda _, c: (c[0] + 1, body_fun(*c)), module, (start, init_val))
        return loop[1]
    if trip <= 0:
        return init_val

    def step(_, carry, unused):
        i, val = carry
        return (i + 1, body_fun(i, val)), None

    scan = {nn}.scan(step, variable_broadcast=True, split_rngs={{"params": False}}, length=trip)
    return scan(module, (start, init_val), None)[0][1]
'''

HELPERS = {"fori_loop": ("fori_loop", FORI_LOOP_SOURCE, (JAX_IMPORT, ImportSpec("operator", None, None)))}


def rewrite_fori_loop(call: cst.Call, *, nn: str) -> Rewrite | Unsupported:
    """``hk.fori_loop(lower, upper, body_fun, init_val)`` -> ``fori_loop(self, ...)`` (the emitted helper)."""
    bound = bind(call, FORI_LOOP)
    if isinstance(bound, Unsupported):
        return bound
    if set(bound) != set(FORI_LOOP.params):
        return Unsupported("hk.fori_loop needs lower, upper, body_fun and init_val")
    args = ", ".join(["self", *(code(bound[p]) for p in FORI_LOOP.params)])
    return Rewrite(cst.parse_expression(f"fori_loop({args})"))


def rewrite_while_loop(call: cst.Call, *, nn: str) -> Rewrite | Unsupported:
    """``hk.while_loop(cond_fun, body_fun, init_val)`` -> ``nn.while_loop`` lifted over ``self``.

    Every collection is broadcast (read-only in the loop), as Haiku's params are
    frozen there; Haiku never runs the loop at init, so neither must Linen.
    """
    bound = bind(call, WHILE_LOOP)
    if isinstance(bound, Unsupported):
        return bound
    if set(bound) != set(WHILE_LOOP.params):
        return Unsupported("hk.while_loop needs cond_fun, body_fun and init_val")
    cond, body = bound["cond_fun"], bound["body_fun"]
    val = free_name("val", cond, body)
    lifted = [f"lambda _, {val}: {_callee(f)}({val})" for f in (cond, body)]
    return Rewrite(cst.parse_expression(f"{nn}.while_loop({', '.join(lifted)}, self, {code(bound['init_val'])})"))


def _callee(node: cst.BaseExpression) -> str:
    text = code(node)
    return text if isinstance(node, (cst.Name, cst.Attribute, cst.Call, cst.Subscript)) else f"({text})"


class PureLoopsCommand(FlaxifyCommand):
    """Rewrites Haiku loops over pure functions to their ``jax.lax`` twins, anywhere in the file."""

    DESCRIPTION = "Turns hk.fori_loop / hk.while_loop over pure functions into jax.lax loops."
    METADATA_DEPENDENCIES = (QualifiedNameProvider, ScopeProvider)

    @classmethod
    def wanted(cls, source: bytes, state: MigrationState) -> bool:
        return b"_loop" in source

    def leave_Call(self, original_node: cst.Call, updated_node: cst.Call) -> cst.BaseExpression:
        qualname = self.haiku_name(original_node.func)
        if qualname not in LOOP_CALLS:
            return updated_node
        bound = bind(original_node, SIGNATURES[qualname])
        if isinstance(bound, Unsupported) or set(bound) != set(SIGNATURES[qualname].params):
            return updated_node  # the module pass reports the arguments it cannot read
        functions = [bound[name] for name in _FUNCTIONS[qualname]]
        if any(self._threads_state(f) for f in functions):
            # Marking the statement keeps the module pass off it (a TODO'd statement is left as it is).
            self.todo("hk." + qualname.removeprefix("haiku."), _STATEFUL_REASON)
            return updated_node
        if not all(self._pure(f) for f in functions):
            return updated_node
        self.need_import(JAX_IMPORT)
        lax_loop = cst.parse_expression(f"jax.lax.{qualname.rsplit('.', 1)[-1]}")
        return updated_node.with_changes(func=lax_loop)

    # -- purity ---------------------------------------------------------------
    def _threads_state(self, fun: cst.BaseExpression) -> bool:
        """True when the loop function itself calls a Haiku state or RNG API (Haiku threads them through the loop)."""
        node = fun if isinstance(fun, cst.Lambda) else self._definition(fun) if isinstance(fun, cst.Name) else None
        if node is None:
            return False
        return any(isinstance(sub, (cst.Name, cst.Attribute)) and self.haiku_name(sub) in _STATEFUL for sub in walk(node))

    def _pure(self, fun: cst.BaseExpression) -> bool:
        """True when ``fun`` is a lambda or a plain local ``def`` that reads only its locals and pure libraries."""
        if isinstance(fun, cst.Lambda):
            return self._pure_body(fun)
        if not isinstance(fun, cst.Name):
            return False
        definition = self._definition(fun)
        return definition is not None and not definition.decorators and self._pure_body(definition)

    def _definition(self, name: cst.Name) -> cst.FunctionDef | None:
        """The one ``def`` the name refers to, if that is all it can be."""
        scope = self.get_metadata(ScopeProvider, name, None)
        if scope is None:
            return None
        referents = {a for access in scope.accesses[name] for a in access.referents}
        if len(referents) != 1:
            return None
        node = next(iter(referents)).node
        return node if isinstance(node, cst.FunctionDef) else None

    def _pure_body(self, fun: cst.Lambda | cst.FunctionDef) -> bool:
        names = _Names()
        fun.visit(names)
        if names.escapes:
            return False
        for node in names.reads:
            if node.value in names.bound:
                continue
            qualified = {q.name for q in self.get_metadata(QualifiedNameProvider, node, set())}
            if not qualified or not all(q.split(".")[0] in _PURE_PREFIXES for q in qualified):
                return False
        return True


class _Names(cst.CSTVisitor):
    """The names a function binds itself and the names it reads."""

    def __init__(self) -> None:
        super().__init__()
        self.bound: set[str] = set()
        self.reads: list[cst.Name] = []
        self.escapes = False  # global / nonlocal statements
        self._skip: set[int] = set()

    def visit_Param(self, node: cst.Param) -> None:
        self.bound.add(node.name.value)
        self._skip.add(id(node.name))

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self.bound.add(node.name.value)
        self._skip.add(id(node.name))

    def visit_Attribute(self, node: cst.Attribute) -> None:
        self._skip.add(id(node.attr))

    def visit_Arg(self, node: cst.Arg) -> None:
        if node.keyword is not None:
            self._skip.add(id(node.keyword))

    def visit_AssignTarget(self, node: cst.AssignTarget) -> None:
        self._bind(node.target)

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        self._bind(node.target)

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        self._bind(node.target)

    def visit_NamedExpr(self, node: cst.NamedExpr) -> None:
        self._bind(node.target)

    def visit_CompFor(self, node: cst.CompFor) -> None:
        self._bind(node.target)

    def visit_For(self, node: cst.For) -> None:
        self._bind(node.target)

    def visit_AsName(self, node: cst.AsName) -> None:
        self._bind(node.name)

    def visit_Global(self, node: cst.Global) -> None:
        self.escapes = True

    def visit_Nonlocal(self, node: cst.Nonlocal) -> None:
        self.escapes = True

    def visit_Name(self, node: cst.Name) -> None:
        if id(node) not in self._skip:
            self.reads.append(node)

    def _bind(self, target: cst.BaseExpression) -> None:
        for sub in _targets(target):
            self.bound.add(sub.value)


def _targets(node: cst.CSTNode) -> list[cst.Name]:
    """The names an assignment target binds (through tuples, lists and starred targets)."""
    if isinstance(node, cst.Name):
        return [node]
    if isinstance(node, (cst.Tuple, cst.List)):
        return [n for e in node.elements for n in _targets(e.value)]
    if isinstance(node, cst.StarredElement):
        return _targets(node.value)
    return []
