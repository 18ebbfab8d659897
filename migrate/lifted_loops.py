"""``hk.fori_loop`` / ``hk.while_loop`` (and ``hk.scan`` functions using state or keys) -> ``jax.lax`` or Linen loops.

Haiku's loops (``haiku/_src/stateful.py``) are ``jax.lax.fori_loop`` /
``jax.lax.while_loop`` with Haiku's state threaded through the carry; at init
``hk.fori_loop`` runs ``body_fun(lower, init_val)`` once eagerly (so that the
parameters the body creates exist before the loop traces it) and loops over the
rest, and ``hk.while_loop`` refuses to run (its docs ask for an
``hk.running_init()`` branch that calls the body once).

Three rewrites, all exact:

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

3. **Loop functions that use state or RNG keys** (``hk.get_state`` /
   ``hk.set_state`` / ``hk.next_rng_key`` / ``hk.dropout`` / stateful modules,
   directly in an ``hk.Module`` method; for ``hk.scan`` / ``hk.map`` /
   ``hk.vmap``, which ``lifted.py`` rewrites, functions using state or drawing
   keys other than ``hk.dropout``'s; state in an ``hk.vmap`` function stays
   TODO). Haiku threads its state and its key sequence through
   the loop carry (``haiku/_src/stateful.py``: the body runs
   under a temporary copy of the frame's state and ``PRNGSequence``, whose
   subkeys are topped up to a full block after each step by splitting the
   carried key: step i draws the sequence's next keys, never a repeat). Linen
   can only do that on the lifted module, so the function takes it first (a
   lambda gets a ``self`` parameter; a ``def`` of the method too, and its
   direct calls pass ``self``), and the migrated ``hk.get_state`` /
   ``hk.next_rng_key`` inside then act on the loop's scope::

       def step(i, h):                                   def step(self, i, h):
           n = hk.get_state("n", [], init=jnp.zeros)         n = self.variable("state", "n", jnp.zeros, [], jnp.float32).value
           hk.set_state("n", n + 1)                  ->      if not self.is_initializing():
           return lin(h)                                         self.put_variable("state", "n", n + 1)
       h = hk.fori_loop(0, 3, step, x)                       return lin(h)
                                                         h = stateful_fori_loop(self, 0, 3, step, x)

   ``stateful_fori_loop`` (emitted) is ``nn.scan`` with
   ``variable_carry="state"`` / ``nn.while_loop`` with
   ``carry_variables="state"``, and ``split_rngs={"dropout": True}`` (a key
   folded with the step index, so each step draws fresh keys; never the same
   key every step); ``stateful_scan`` is the same for ``hk.scan`` / ``hk.map``
   (a closure over the calling module would draw one key for all steps, and
   could not write state); ``hk.vmap``'s function is given to ``nn.vmap``
   as it is, taking the module (``split_rngs`` as Haiku's ``split_rng``). ``hk.while_loop`` becomes ``nn.while_loop(...,
   self, init, carry_variables="state", split_rngs={"dropout": True})``; a
   ``cond_fun`` reading state keeps reading it through the calling module,
   which holds the state as it was before the loop: Haiku's ``cond_fun`` sees
   that too, not the carried state (only ``body_fun`` runs under it). State is
   exact (bit-identical outputs and state, call after call); keys have
   Haiku's distribution, not its values
   (another derivation), so ``flaxify check`` reports such calls as drawn in a
   lifted transform. At init the helpers run only the first step (on the
   module itself), as Haiku runs it eagerly: it creates the body's parameters
   and state, and Haiku's init returns that state without the loop's updates.
   Linen's init output (which ``init`` does not return) is then one step's.

   The pre-pass marks such a function for the module pass as Haiku code that
   means the same (``lambda i, v, self=self: ...``; a def is handed over as
   ``lambda i, v, self=self: step(self, i, v)``), and :func:`lifted_function`
   turns the mark into the function taking the module.

Left under a TODO naming the ``carry_variables`` form: such loops outside an
``hk.Module`` method (a transformed function or a helper has no module to lift
yet); a ``def`` used other than called, or handed to two loops; lambdas with
defaults or ``*`` parameters; ``cond_fun`` updating state or drawing keys (Haiku
raises). A user module called in the body that keeps state of its own (built
outside the loop) is not seen here: its variables stay in the calling scope, and
Flax raises when the loop writes them.
"""

from __future__ import annotations

import libcst as cst
from libcst.codemod import CodemodContext
from libcst.metadata import ClassScope, FunctionScope, QualifiedNameProvider, ScopeProvider

from flaxify.migrate.base import FlaxifyCommand, MigrationState
from flaxify.migrate.layers_common import Signature, bind, code, free_name, walk
from flaxify.migrate.lifted import MAP, SCAN, VMAP
from flaxify.migrate.rewrite import JAX_IMPORT, ImportSpec, Rewrite, Unsupported

FORI_LOOP = Signature("hk.fori_loop", ("lower", "upper", "body_fun", "init_val"))
WHILE_LOOP = Signature("hk.while_loop", ("cond_fun", "body_fun", "init_val"))
SIGNATURES = {
    "haiku.fori_loop": FORI_LOOP,
    "haiku.while_loop": WHILE_LOOP,
    "haiku.scan": SCAN,
    "haiku.map": MAP,
    "haiku.vmap": VMAP,
}
# hk.scan / hk.map become nn.scan in the module pass (lifted.py); this pass marks their functions
# when those use state or draw keys themselves (a closure over the calling module would draw one key
# for every step, and cannot write state).
SCAN_CALLS = frozenset({"haiku.scan", "haiku.map"})
# hk.vmap (lifted.py) likewise: nn.vmap splits the keys of the module it maps, not of a closure's.
# Its function is called with any number of arguments; Haiku maps no state (a TODO when it uses some).
_LIFTED_ELSEWHERE = SCAN_CALLS | {"haiku.vmap"}
# The functions of each loop, which must all be pure for the jax.lax rewrite.
_FUNCTIONS = {
    "haiku.fori_loop": ("body_fun",),
    "haiku.while_loop": ("cond_fun", "body_fun"),
    "haiku.scan": ("f",),
    "haiku.map": ("fn",),
    "haiku.vmap": ("fun",),
}
# The arguments each loop function is called with (for the mark of a named def); "*" for any.
_ARGUMENTS = {"body_fun": ("i", "val"), "cond_fun": ("val",), "f": ("carry", "x"), "fn": ("x",), "fun": ("*args",)}
# Haiku APIs whose state or RNG key Haiku threads through the loop carry.
_STATE = frozenset(
    f"haiku.{api}" for api in ("get_state", "set_state", "BatchNorm", "ExponentialMovingAverage", "EMAParamsTree")
)
_KEYS = frozenset({"haiku.next_rng_key", "haiku.next_rng_keys", "haiku.maybe_next_rng_key"})
_STATEFUL = _STATE | _KEYS | {"haiku.dropout"}
# How to port a loop the rewrite leaves (what it would have written).
_BY_HAND = (
    "write nn.while_loop(cond_fn, body_fn, self, init, carry_variables='state', split_rngs={'dropout': True})"
    " (or nn.scan(..., variable_carry='state') for static bounds) with functions taking the module first and"
    " using mdl.variable / mdl.make_rng"
)
_STATEFUL_REASON = (
    "the loop function uses Haiku state or RNG keys, which Haiku threads through the loop carry; flaxify lifts"
    " such a loop only directly in an hk.Module method (not in a transformed function or a helper): move it into"
    " one, or " + _BY_HAND
)
_COMMA = cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))
_EQUAL = cst.AssignEqual(cst.SimpleWhitespace(""), cst.SimpleWhitespace(""))
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

FORI_LOOP_STATEFUL = "stateful_fori_loop"
STATEFUL_FORI_LOOP_SOURCE = '''def stateful_fori_loop(module, lower, upper, body_fun, init_val):
    """Haiku's hk.fori_loop over a body using state or RNG keys: body_fun(module, i, val) gets the module lifted into the loop.

    The "state" collection is carried through the loop and each step draws fresh "dropout" keys, as Haiku threads its
    state and key sequence through the carry. At init only the first step runs, on the module itself: it creates the
    body's parameters and state, and Haiku's init returns that state without the loop's updates.
    """
    if module.is_initializing():
        return body_fun(module, lower, init_val)
    # As jax.lax.fori_loop: the counter takes the bounds' common dtype; concrete
    # bounds scan (reverse-differentiable), traced bounds use a while loop.
    dtype = jax.numpy.promote_types(jax.numpy.asarray(lower).dtype, jax.numpy.asarray(upper).dtype)
    start = jax.lax.convert_element_type(lower, dtype)
    try:
        trip = operator.index(upper) - operator.index(lower)
    except TypeError:
        stop = jax.lax.convert_element_type(upper, dtype)
        loop = {nn}.while_loop(
            lambda _, c: c[0] < stop,
            lambda mdl, c: (c[0] + 1, body_fun(mdl, *c)),
            module,
            (start, init_val),
            carry_variables="state",
            split_rngs={{"dropout": True}},
        )
        return loop[1]
    if trip <= 0:
        return init_val

    def step(mdl, carry, unused):
        i, val = carry
        return (i + 1, body_fun(mdl, i, val)), None

    scan = {nn}.scan(
        step, variable_broadcast="params", variable_carry="state", split_rngs={{"params": False, "dropout": True}}, length=trip
    )
    return scan(module, (start, init_val), None)[0][1]
'''

SCAN_STATEFUL = "stateful_scan"
STATEFUL_SCAN_SOURCE = '''def stateful_scan(module, f, init, xs, length=None, reverse=False, unroll=1):
    """Haiku's hk.scan over a function using state or RNG keys: f(module, carry, x) gets the module lifted into the scan.

    The "state" collection is carried through the scan and each step draws fresh "dropout" keys, as Haiku threads its
    state and key sequence through the carry. At init only the first step runs, on the module itself: it creates the
    function's parameters and state, and Haiku's init returns that state without the scan's updates (init's output,
    which Linen does not return, repeats the first step's).
    """
    if length is None:
        length = jax.tree.leaves(xs)[0].shape[0]
    if module.is_initializing():
        # As Haiku: an empty scan still runs f once, on zeros, for its parameters and state.
        first = (lambda x: x[-1] if reverse else x[0]) if length else (lambda x: jax.numpy.zeros(x.shape[1:], x.dtype))
        carry, y0 = f(module, init, jax.tree.map(first, xs))
        ys = jax.tree.map(lambda y: jax.numpy.broadcast_to(y, (length, *jax.numpy.shape(y))), y0)
        return (carry if length else init), ys
    scan = {nn}.scan(
        f,
        variable_broadcast="params",
        variable_carry="state",
        split_rngs={{"params": False, "dropout": True}},
        length=length,
        reverse=reverse,
        unroll=unroll,
    )
    return scan(module, init, xs)
'''

_LOOP_IMPORTS = (JAX_IMPORT, ImportSpec("operator", None, None))
HELPERS = {
    "fori_loop": ("fori_loop", FORI_LOOP_SOURCE, _LOOP_IMPORTS),
    FORI_LOOP_STATEFUL: (FORI_LOOP_STATEFUL, STATEFUL_FORI_LOOP_SOURCE, _LOOP_IMPORTS),
    SCAN_STATEFUL: (SCAN_STATEFUL, STATEFUL_SCAN_SOURCE, (JAX_IMPORT,)),
}
# The emitted helper each kind of lifted loop calls, when its functions take the module.
_STATEFUL_HELPERS = {"haiku.fori_loop": FORI_LOOP_STATEFUL, "haiku.scan": SCAN_STATEFUL, "haiku.map": SCAN_STATEFUL}
# What the lifted loops pass besides the module: the state is carried, each step gets fresh dropout keys.
_CARRY_OPTIONS = 'carry_variables="state", split_rngs={"dropout": True}'


def rewrite_fori_loop(call: cst.Call, *, nn: str) -> Rewrite | Unsupported:
    """``hk.fori_loop(lower, upper, body_fun, init_val)`` -> ``fori_loop(self, ...)`` (the emitted helper)."""
    bound = bind(call, FORI_LOOP)
    if isinstance(bound, Unsupported):
        return bound
    if set(bound) != set(FORI_LOOP.params):
        return Unsupported("hk.fori_loop needs lower, upper, body_fun and init_val")
    body = lifted_function(bound["body_fun"])
    if body is not None:  # marked by the pre-pass: the body uses state or RNG keys
        args = ", ".join(["self", code(bound["lower"]), code(bound["upper"]), body, code(bound["init_val"])])
        return Rewrite(cst.parse_expression(f"{FORI_LOOP_STATEFUL}({args})"))
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
    taking_module = [lifted_function(f) for f in (cond, body)]
    val = free_name("val", *(f for f, m in zip((cond, body), taking_module, strict=True) if m is None))
    lifted = [m or f"lambda _, {val}: {_callee(f)}({val})" for m, f in zip(taking_module, (cond, body), strict=True)]
    options = [_CARRY_OPTIONS] if any(taking_module) else []
    args = ", ".join([*lifted, "self", code(bound["init_val"]), *options])
    return Rewrite(cst.parse_expression(f"{nn}.while_loop({args})"))


def lifted_function(fun: cst.BaseExpression) -> str | None:
    """The function taking the lifted module first, for a loop function the pre-pass marked; else None.

    ``lambda i, v, self=self: E`` -> ``lambda self, i, v: E``, and the named
    def's mark ``lambda i, v, self=self: step(self, i, v)`` -> ``step``.
    """
    if not isinstance(fun, cst.Lambda):
        return None
    params = list(fun.params.params)
    star = fun.params.star_arg
    star_name = f"*{star.name.value}" if isinstance(star, cst.Param) else None
    # The mark is the last parameter, or the one keyword-only parameter after *args.
    markers = fun.params.kwonly_params if star_name else params[-1:]
    if len(markers) != 1 or not _is_mark(markers[0]):
        return None
    names = [p.name.value for p in (params if star_name else params[:-1])] + ([star_name] if star_name else [])
    body = fun.body
    if isinstance(body, cst.Call) and isinstance(body.func, cst.Name) and not body.lpar:
        passed = [code(a.value) if a.keyword is None and not a.star else a.star + code(a.value) for a in body.args]
        if passed == ["self", *names]:
            return body.func.value
    return f"lambda {', '.join(['self', *names])}: {code(body)}"


def _is_mark(param: cst.Param) -> bool:
    """``self=self``: the pre-pass's mark on a function that gets the lifted module."""
    return param.name.value == "self" and isinstance(param.default, cst.Name) and param.default.value == "self"


def _callee(node: cst.BaseExpression) -> str:
    text = code(node)
    return text if isinstance(node, (cst.Name, cst.Attribute, cst.Call, cst.Subscript)) else f"({text})"


class PureLoopsCommand(FlaxifyCommand):
    """Rewrites Haiku loops over pure functions to their ``jax.lax`` twins, anywhere in the file.

    Loop functions using state or RNG keys are marked for the module pass (they
    will take the lifted module first), or the loop is marked TODO.
    """

    DESCRIPTION = (
        "Turns hk.fori_loop / hk.while_loop over pure functions into jax.lax loops; hands loop functions using state"
        " or RNG keys the lifted module."
    )
    METADATA_DEPENDENCIES = (QualifiedNameProvider, ScopeProvider)

    def __init__(self, context: CodemodContext) -> None:
        super().__init__(context)
        # Per loop whose functions use state or RNG (by id of the original call): the
        # parameters (``body_fun``, ``f``, ...) whose function will take the lifted
        # module first, or why the loop stays TODO. Planned when its method is entered,
        # because the function's ``def`` comes (and is left) before the loop.
        self._plans: dict[int, frozenset[str] | str] = {}
        self._take_module: set[int] = set()  # nested defs that get a leading ``self`` parameter
        self._pass_module: set[int] = set()  # direct calls of those defs: ``step(x)`` -> ``step(self, x)``
        self._in_module_class: list[bool] = []  # per enclosing class: is it a Haiku module
        self._module_classes: set[str] = set()  # classes of this file known to be Haiku modules

    @classmethod
    def wanted(cls, source: bytes, state: MigrationState) -> bool:
        if b"_loop" in source:
            return True
        # A scan or map matters here only when something in the file uses state or draws keys.
        threads = (b"rng_key", b"_state", b"BatchNorm", b"MovingAverage", b"EMAParamsTree")
        return (b"scan" in source or b"map" in source) and any(word in source for word in threads)

    # -- loops over functions using state or RNG --------------------------------
    def visit_ClassDef(self, node: cst.ClassDef) -> bool:
        module = any(
            self.haiku_name(base.value) == "haiku.Module"
            or (isinstance(base.value, cst.Name) and base.value.value in self._module_classes)
            for base in node.bases
        )
        if module:
            self._module_classes.add(node.name.value)
        self._in_module_class.append(module)
        return True

    def leave_ClassDef(self, original_node: cst.ClassDef, updated_node: cst.ClassDef) -> cst.ClassDef:
        self._in_module_class.pop()
        return updated_node

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        if self._in_module_class and self._in_module_class[-1] and _first_param(node) == "self":
            scope = self.get_metadata(ScopeProvider, node, None)
            if isinstance(scope, ClassScope):
                self._plan_method(node)
        return True

    def leave_FunctionDef(self, original_node: cst.FunctionDef, updated_node: cst.FunctionDef) -> cst.FunctionDef:
        if id(original_node) not in self._take_module:
            return updated_node
        params = updated_node.params
        first = cst.Param(cst.Name("self"), comma=_COMMA)
        return updated_node.with_changes(params=params.with_changes(params=[first, *params.params]))

    def _plan_method(self, method: cst.FunctionDef) -> None:
        """Decides, for each loop of ``method`` whose functions use state or RNG, how to lift it (or why not)."""
        loops: list[tuple[cst.Call, str, dict[str, cst.BaseExpression]]] = []
        calls: dict[int, cst.Call] = {}  # id of a call's func -> the call
        for node in walk(method.body):
            if not isinstance(node, cst.Call):
                continue
            calls[id(node.func)] = node
            qualname = self.haiku_name(node.func)
            if qualname in SIGNATURES and id(node) not in self._plans:
                bound = self._bound(node, qualname)
                if bound is not None:
                    loops.append((node, qualname, bound))
        passed = {id(bound[name]) for _, qualname, bound in loops for name in _FUNCTIONS[qualname]}
        for call, qualname, bound in loops:
            if any(self._needs_module(qualname, bound[name]) for name in _FUNCTIONS[qualname]):
                self._plans[id(call)] = self._plan_loop(method, call, qualname, bound, calls, passed)

    def _bound(self, call: cst.Call, qualname: str) -> dict[str, cst.BaseExpression] | None:
        """The loop's arguments by name, when every one a loop needs (a scan's function at least) is there."""
        bound = bind(call, SIGNATURES[qualname])
        if isinstance(bound, Unsupported):
            return None
        needed = set(_FUNCTIONS[qualname]) if qualname in _LIFTED_ELSEWHERE else set(SIGNATURES[qualname].params)
        return bound if needed <= set(bound) else None

    def _needs_module(self, qualname: str, fun: cst.BaseExpression) -> bool:
        """True when the loop function must be handed the lifted module (it uses state or draws keys itself).

        A scanned function whose only keys feed ``hk.dropout`` (and no state)
        needs nothing: the module pass makes those ``nn.Dropout`` layers, which
        Flax builds in the scan's own scope (a fresh key per step).
        """
        if qualname in _LIFTED_ELSEWHERE:
            return bool(self._stateful_apis(fun, dropout_keys=False) - {"haiku.dropout"})
        return self._threads_state(fun)

    def _plan_loop(
        self,
        method: cst.FunctionDef,
        call: cst.Call,
        qualname: str,
        bound: dict[str, cst.BaseExpression],
        calls: dict[int, cst.Call],
        passed: set[int],
    ) -> frozenset[str] | str:
        """The loop functions to hand the lifted module to, or the reason the loop stays TODO."""
        scope = self.get_metadata(ScopeProvider, call, None)
        if not isinstance(scope, FunctionScope) or scope.node is not method:
            return _STATEFUL_REASON
        helper = _STATEFUL_HELPERS.get(qualname)
        if helper in self.state.user_names:
            return (
                f"the exact rewrite emits a helper named {helper}, and this file defines its own;"
                " rename yours and run flaxify migrate again"
            )
        if qualname == "haiku.vmap" and self._stateful_apis(bound["fun"]) & _STATE:
            return (
                "the mapped function uses Haiku state, which hk.vmap never maps: write nn.vmap(lambda mdl, *args: ...,"
                " variable_axes={'params': None, 'state': None}, split_rngs={'params': False, 'dropout': split_rng})"
                " by hand, with mdl.variable inside"
            )
        cond = bound.get("cond_fun")
        if cond is not None and self._stateful_apis(cond) - {"haiku.get_state"}:
            return (
                "Haiku's hk.while_loop raises for hk.set_state, RNG keys and stateful modules in cond_fun: move them into"
                " body_fun, then " + _BY_HAND
            )
        lifted: set[str] = set()
        take: set[int] = set()
        pass_module: set[int] = set()
        for name in _FUNCTIONS[qualname]:
            fun = bound[name]
            if name == "cond_fun" or not self._needs_module(qualname, fun):
                # Haiku's cond_fun reads the state as it was before the loop (only body_fun gets the
                # carried state): a closure over the calling module reads just that in Linen too.
                continue
            if isinstance(fun, cst.Lambda):
                if not _plain_params(fun.params) or "self" in _param_names(fun.params):
                    return "the loop function is a lambda with defaults, * parameters or a parameter named self: " + _BY_HAND
                lifted.add(name)
                continue
            definition = self._definition(fun) if isinstance(fun, cst.Name) else None
            if definition is None or self.get_metadata(ScopeProvider, definition, None) is not scope:
                return f"the loop function {code(fun)} is not a lambda or a def of this method: " + _BY_HAND
            if definition.decorators or definition.params.posonly_params or "self" in _param_names(definition.params):
                return f"{definition.name.value} is decorated, has positional-only parameters or a parameter named self: " + _BY_HAND
            for access in scope.accesses[definition.name.value]:
                if access.node is fun:
                    continue
                if id(access.node) in passed:
                    return f"{definition.name.value} is handed to more than one loop: " + _BY_HAND
                direct = calls.get(id(access.node))
                if direct is None:
                    return f"{definition.name.value} is used other than called or handed to a loop: " + _BY_HAND
                pass_module.add(id(direct))
            lifted.add(name)
            take.add(id(definition))
        self._take_module |= take
        self._pass_module |= pass_module
        if helper is not None:
            self.state.helper_classes.add(f"haiku.{helper}")
        return frozenset(lifted)

    def _mark_lifted(self, call: cst.Call, sig: Signature, lifted: frozenset[str]) -> cst.Call:
        """Marks the loop functions that get the lifted module: ``lambda i, v, self=self: ...``.

        A named def (which now takes ``self`` first) is handed over as
        ``lambda i, v, self=self: step(self, i, v)``. The marked call is still
        Haiku code meaning the same (``self`` is the Haiku module); the module
        pass rewrites it (:func:`rewrite_fori_loop`, :func:`rewrite_while_loop`).
        """
        bound = bind(call, sig)
        assert not isinstance(bound, Unsupported)
        replace: dict[int, cst.BaseExpression] = {}
        for name in lifted:
            fun = bound[name]
            if isinstance(fun, cst.Lambda):
                params = fun.params.params
                marker = cst.Param(cst.Name("self"), default=cst.Name("self"), equal=_EQUAL)
                if params:
                    params = [*params[:-1], params[-1].with_changes(comma=_COMMA)]
                replace[id(fun)] = fun.with_changes(params=fun.params.with_changes(params=[*params, marker]))
            else:
                names = [n if n.startswith("*") else free_name(n, fun) for n in _ARGUMENTS[name]]
                text = f"lambda {', '.join(names)}, self=self: {code(fun)}(self, {', '.join(names)})"
                replace[id(fun)] = cst.parse_expression(text)
        args = [a.with_changes(value=replace[id(a.value)]) if id(a.value) in replace else a for a in call.args]
        return call.with_changes(args=args)

    def leave_Call(self, original_node: cst.Call, updated_node: cst.Call) -> cst.BaseExpression:
        if id(original_node) in self._pass_module:  # a direct call of a loop function that now takes the module
            return updated_node.with_changes(args=[cst.Arg(cst.Name("self"), comma=_COMMA), *updated_node.args])
        qualname = self.haiku_name(original_node.func)
        if qualname not in SIGNATURES:
            return updated_node
        bound = self._bound(original_node, qualname)
        if bound is None:
            return updated_node  # the module pass reports the arguments it cannot read
        functions = [bound[name] for name in _FUNCTIONS[qualname]]
        if any(self._needs_module(qualname, f) for f in functions):
            plan = self._plans.get(id(original_node), _STATEFUL_REASON)
            if isinstance(plan, str):
                # Marking the statement keeps the module pass off it (a TODO'd statement is left as it is).
                self.todo("hk." + qualname.removeprefix("haiku."), plan)
                return updated_node
            return self._mark_lifted(updated_node, SIGNATURES[qualname], plan)
        if qualname in SCAN_CALLS or not all(self._pure(f) for f in functions):
            return updated_node
        self.need_import(JAX_IMPORT)
        lax_loop = cst.parse_expression(f"jax.lax.{qualname.rsplit('.', 1)[-1]}")
        return updated_node.with_changes(func=lax_loop)

    # -- purity ---------------------------------------------------------------
    def _threads_state(self, fun: cst.BaseExpression) -> bool:
        """True when the loop function itself calls a Haiku state or RNG API (Haiku threads them through the loop)."""
        return bool(self._stateful_apis(fun))

    def _stateful_apis(self, fun: cst.BaseExpression, *, dropout_keys: bool = True) -> set[str]:
        """The Haiku state and RNG APIs the loop function (a lambda or a named def) refers to itself.

        ``dropout_keys=False`` leaves out the ``hk.next_rng_key()`` given straight
        to ``hk.dropout`` (which becomes an ``nn.Dropout`` drawing its own key).
        """
        node = fun if isinstance(fun, cst.Lambda) else self._definition(fun) if isinstance(fun, cst.Name) else None
        if node is None:
            return set()
        skip: set[int] = set()
        if not dropout_keys:
            for sub in walk(node):
                if isinstance(sub, cst.Call) and self.haiku_name(sub.func) == "haiku.dropout" and sub.args:
                    key = sub.args[0].value
                    if isinstance(key, cst.Call) and self.haiku_name(key.func) == "haiku.next_rng_key":
                        skip.add(id(key.func))
        found = (
            self.haiku_name(sub) for sub in walk(node) if isinstance(sub, (cst.Name, cst.Attribute)) and id(sub) not in skip
        )
        return {q for q in found if q in _STATEFUL}

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


def _first_param(fun: cst.FunctionDef) -> str | None:
    params = fun.params.posonly_params or fun.params.params
    return params[0].name.value if params else None


def _param_names(params: cst.Parameters) -> set[str]:
    every = [*params.posonly_params, *params.params, *params.kwonly_params]
    every += [p for p in (params.star_arg, params.star_kwarg) if isinstance(p, cst.Param)]
    return {p.name.value for p in every}


def _plain_params(params: cst.Parameters) -> bool:
    """Only positional-or-keyword parameters without defaults (what a loop calls a lambda with)."""
    return not (params.posonly_params or params.kwonly_params or params.star_kwarg) and not isinstance(
        params.star_arg, cst.Param
    ) and all(p.default is None for p in params.params)


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
