"""``class X(hk.Module)`` → ``class X(nn.Module)``.

Before::

    class Block(hk.Module):
      def __init__(self, features: int, name=None):
        super().__init__(name=name)
        self.features = features
        self.norm = hk.LayerNorm(-1, True, True)

      def __call__(self, x):
        x = hk.Linear(self.features)(self.norm(x))
        return hk.Linear(self.features)(jax.nn.relu(x))

After::

    class Block(nn.Module):
      features: int

      def setup(self):
        self.norm = nn.LayerNorm(..., name="layer_norm")

      @nn.compact
      def __call__(self, x):
        x = nn.Dense(self.features, ..., name="linear")(self.norm(x))
        return nn.Dense(self.features, ..., name="linear_1")(jax.nn.relu(x))

Constructor arguments become typed fields (``init_analysis.py``); what
``__init__`` built moves to ``setup()``, where a container it filled in place
is built as a local first (``setup_containers.py``) and a keyword dict spread
into one layer is translated key by key (``layer_configs.py``); a subclass
whose ``__init__`` only forwards to its parent's overrides the parent's field
defaults (``init_forwarding.py``); a method that builds submodules or
parameters inline becomes ``@nn.compact`` when it is ``__call__``; another
method doing so becomes ``@nn.compact_name_scope`` (Haiku's ``~method/``
names) when its class is only ever the Flax root (an ``hk.multi_transform``
template's module; its own ``hk.get_parameter`` calls are made in ``setup()``
when nothing the method computes shapes them, ``scoped_params.py``), and is
left as it was under a TODO otherwise (Linen allows
one compact method, and ``nn.compact_name_scope`` misplaces parameters in
nested modules), except a method that only returns a new module, which becomes
``@nn.nowrap`` (``factory_methods.py``). Every submodule gets ``name=`` equal to its Haiku name where
that name is static (``naming.py``), so the parameter tree mirrors Haiku's.

Inside module methods this pass also rewrites what needs ``self``:
``hk.get_parameter`` → ``self.param``; RNG keys and ``hk.dropout``
(``rng.py``); ``hk.get_state`` / ``hk.set_state`` (``state.py``, with the
``is_initializing()`` guard on statements); ``hk.remat`` and the Haiku names of
``hk.layer_stack`` (``lifted.py``). (``hk.BatchNorm`` calls need nothing: the
emitted exact helper takes Haiku's call signature, ``layers_batchnorm.py``.)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import libcst as cst
import libcst.matchers as m
from libcst.codemod.visitors import RemoveImportsVisitor
from libcst.metadata import QualifiedNameProvider

from flaxify.migrate import (
    dataclass_modules,
    factory_methods,
    layer_configs,
    lifted,
    name_scope,
    properties,
    rng,
    scoped_params,
    state,
    utilities,
)
from flaxify.migrate.base import VARIABLE_CALLS, FlaxifyCommand, parenthesized
from flaxify.migrate.bindings import BOUND_INITIALIZER
from flaxify.migrate.init_analysis import Field, InitPlan, analyse_init
from flaxify.migrate.init_fields import InitializerFields, find_initializer_fields
from flaxify.migrate.init_forwarding import analyse_forwarding, forwarding_call
from flaxify.migrate.initializers import rewrite_initializer
from flaxify.migrate.layer_configs import LayerConfig, find_layer_configs, literal_name, spread_name
from flaxify.migrate.layers import LAYERS, rewrite_layer, rewrite_layer_call
from flaxify.migrate.layers_common import bind, code, walk
from flaxify.migrate.naming import Construction, ScopeNamer, camel_to_snake
from flaxify.migrate.rewrite import ImportSpec, Rewrite, Unsupported
from flaxify.migrate.setup_containers import build_then_store

_DYNAMIC = (
    cst.For,
    cst.While,
    cst.If,
    cst.IfExp,
    cst.Try,
    cst.BooleanOperation,
    cst.ListComp,
    cst.SetComp,
    cst.DictComp,
    cst.GeneratorExp,
    cst.Lambda,
    cst.FunctionDef,
    cst.ClassDef,
)


@dataclass
class ClassPlan:
    init: InitPlan | None
    decorators: dict[str, str] = field(default_factory=dict)  # method -> "compact"
    todo_methods: dict[str, str] = field(default_factory=dict)  # method -> why it stays Haiku
    # State entries a get_state(..., init=...) creates: a set_state on them is
    # guarded (Haiku's init returns the initial state).
    initial_state: set[str] = field(default_factory=set)
    # `self.bn` / `bn` bound to hk.BatchNorm(...): their calls take is_training.
    has_layer_stack: bool = False
    # Keyword dicts spread into one layer (layer_configs.py): dict name -> its translated setdefault lines.
    layer_configs: dict[str, list[cst.SimpleStatementLine]] = field(default_factory=dict)
    # Fields that only feed layers' initializer slots: Flax initializers or None (init_fields.py).
    initializer_fields: InitializerFields = field(default_factory=InitializerFields)
    # Properties creating a variable, made in setup() instead (properties.py), and their setup() code.
    variable_properties: dict[str, properties.VariableProperty] = field(default_factory=dict)
    property_setup: list[cst.BaseStatement] = field(default_factory=list)
    # hk.get_parameter calls of a root's compact_name_scope method made in setup() instead (scoped_params.py).
    hoisted_params: dict[int, str] = field(default_factory=dict)


class ConvertModulesCommand(FlaxifyCommand):
    DESCRIPTION = "Turns hk.Module subclasses into Linen dataclass modules."

    METADATA_DEPENDENCIES = (QualifiedNameProvider,)

    def __init__(self, context):  # type: ignore[no-untyped-def]
        super().__init__(context)
        self._plans: dict[str, ClassPlan] = {}
        self._names: dict[int, str | None] = {}  # id(original construction call) -> Haiku name
        self._classes: list[str | None] = []  # stack: converting class name, or None
        self._method_ids: set[int] = set()  # direct methods of converting classes
        self._method_stack: list[str] = []  # the converting class's methods being visited
        self._value_writes: dict[int, str] = {}  # id(rewritten set_state) -> attribute holding its variable
        # Haiku constructions called on the spot (`hk.Linear(3)(x)`): rewritten
        # together with their call, whose arguments may belong to the constructor.
        self._called_at_once: set[int] = set()
        self._skipped: set[int] = set()  # calls inside methods left as they were (TODO)
        self._statement_calls: set[int] = set()  # calls that are a whole expression statement
        self._guarded: set[int] = set()  # rewritten set_state calls whose statement gets a guard
        self._stack_names: dict[int, str] = {}  # id(original hk.layer_stack call) -> Haiku name
        self._in_stack_body: set[int] = set()  # calls inside an @hk.layer_stack body
        self._stack_remats: set[int] = set()  # ids of hk.remat(f) in hk.layer_stack(n)(hk.remat(f))
        # id(original hk.DepthwiseConv*D construction) -> the argument its one call passes.
        self._depthwise_inputs: dict[int, cst.Name] = {}
        # id(original construction taking **config) -> the config dict __init__ builds for it.
        self._configs: dict[int, LayerConfig] = {}
        self._builders: set[str] = set()  # top-level functions of the file that build Haiku modules

    # -- which classes ------------------------------------------------------
    def is_haiku_module(self, node: cst.ClassDef) -> bool:
        if node.name.value in self.state.wrapper_classes:
            return True
        for base in node.bases:
            if self.haiku_name(base.value) in ("haiku.Module", "haiku.RNNCore"):
                return True
            if isinstance(base.value, cst.Name) and base.value.value in self.state.module_classes:
                return True
        return False

    def visit_Module(self, node: cst.Module) -> None:
        # Register every module class first: a class can build one defined below it.
        classes: dict[str, cst.ClassDef] = {}
        for statement in node.body:
            if isinstance(statement, cst.ClassDef) and self.is_haiku_module(statement):
                init = _method(statement, "__init__")
                plan = self._forwarding_plan(statement, classes) if init else None
                plan = plan or (analyse_init(init, statement.name.value) if init else None)
                classes[statement.name.value] = statement
                default = plan.default_name if plan else camel_to_snake(statement.name.value)
                self.state.module_classes[statement.name.value] = default or camel_to_snake(statement.name.value)
                self._plans[statement.name.value] = ClassPlan(plan)
        self._builders = self._module_building_functions(node)

    def _module_building_functions(self, module: cst.Module) -> set[str]:
        """Top-level functions of this file that build Haiku modules or variables, directly or via each other.

        A method calling one needs a compact scope as if it built the layers itself: Linen attaches a
        module built in a plain function to the module whose compact method is running.
        """
        defs = [s for s in module.body if isinstance(s, cst.FunctionDef)]
        calls = {fn.name.value: [n for n in walk(fn.body) if isinstance(n, cst.Call)] for fn in defs}
        builders = {name for name, found in calls.items() if any(self._builds(call) for call in found)}
        grown = True
        while grown:  # a function calling a builder builds too
            grown = False
            for name, found in calls.items():
                if name not in builders and any(_calls_one_of(call, builders) for call in found):
                    builders.add(name)
                    grown = True
        return builders

    def _builds(self, call: cst.Call) -> bool:
        return self.construction_base(call) is not False or self.haiku_name(call.func) in VARIABLE_CALLS

    def _forwarding_plan(self, node: cst.ClassDef, classes: dict[str, cst.ClassDef]) -> InitPlan | None:
        """The plan of a subclass of a converted class above it whose ``__init__`` only forwards."""
        init = _method(node, "__init__")
        bases = [b.value.value for b in node.bases if isinstance(b.value, cst.Name)]
        if init is None or len(node.bases) != 1 or not bases or forwarding_call(init) is None:
            return None
        parent = self._plans.get(bases[0])
        if bases[0] not in classes or parent is None or parent.init is None or parent.init.problem:
            return None
        return analyse_forwarding(init, node.name.value, parent.init, classes[bases[0]])

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        plan = self._plans.get(node.name.value)
        if plan is None and self.is_haiku_module(node):  # nested class
            init = _method(node, "__init__")
            plan = ClassPlan(analyse_init(init, node.name.value) if init else None)
            self._plans[node.name.value] = plan
        if plan is None or (plan.init is not None and plan.init.problem):
            self._classes.append(None)
            return
        self._classes.append(node.name.value)
        self._method_ids.update(id(method) for method in _methods(node))
        self._find_state_and_stacks(node, plan)
        if plan.init is not None:
            plan.initializer_fields = find_initializer_fields(
                node, [(f.name, f.default) for f in plan.init.fields], plan.init.renames, self._call_kind
            )
        init = _method(node, "__init__")
        if init is not None:
            self._configs.update(find_layer_configs(list(init.body.body), self._config_spreads(init)))
        self._name_constructions(node, plan)
        for method in _methods(node):
            if method.name.value != "__init__":
                self._find_depthwise_inputs(method)

    def _call_kind(self, call: cst.Call) -> bool | str:
        """True for a Haiku layer construction, "local" for a module class of this file, else False."""
        if not isinstance(call.func, (cst.Name, cst.Attribute)):
            return False
        if self.local_name(call.func) is not None:
            return "local"
        return self.is_haiku_module_class(self.haiku_name(call.func))

    def _layer_resolver(self):  # type: ignore[no-untyped-def]
        """The resolver layer rewrites get: initializer fields resolve to ``FIELD_INITIALIZER``."""
        if not self._converting() or not self._method_stack:
            return self.resolve_spelling
        in_init = self._method_stack[-1] == "__init__"
        return self._plan().initializer_fields.resolver(self.resolve_spelling, in_init)

    def _find_state_and_stacks(self, node: cst.ClassDef, plan: ClassPlan) -> None:
        for sub in walk(node):
            if isinstance(sub, cst.Call) and self.haiku_name(sub.func) == "haiku.get_state":
                bound = _bind(sub, ("name", "shape", "dtype", "init"))
                name = state.literal_name(sub, state.GET_STATE)
                if name is not None and bound is not None and code(bound.get("init", cst.Name("None"))) != "None":
                    plan.initial_state.add(name)
            elif isinstance(sub, cst.Call) and self.haiku_name(sub.func) in lifted.LAYER_STACK_CALLS:
                plan.has_layer_stack = True

    def _find_depthwise_inputs(self, method: cst.FunctionDef) -> None:
        """``dw = hk.DepthwiseConv2D(...)`` later called once as ``dw(x)`` in the same method.

        Haiku reads the channel count from ``x`` at call time; Linen needs it at
        construction. ``x.shape[-1]`` is the same value at both places when
        ``x`` is a parameter of the method that the method never rebinds, and
        ``dw`` is bound once and used by that one call only.
        """
        rebound = _bound_names(method)
        parameters = {p.name.value for p in (*method.params.posonly_params, *method.params.params, *method.params.kwonly_params)}
        uses: dict[str, list[cst.Name]] = {}
        attrs = {id(n.attr) for n in walk(method) if isinstance(n, cst.Attribute)}
        for node in walk(method):
            if isinstance(node, cst.Name) and id(node) not in attrs:
                uses.setdefault(node.value, []).append(node)
        calls = {id(n.func): n for n in walk(method) if isinstance(n, cst.Call)}
        for node in walk(method):
            if not (_assigns_call(node) and isinstance(node.targets[0].target, cst.Name)):  # type: ignore[attr-defined]
                continue
            construction, target = node.value, node.targets[0].target  # type: ignore[attr-defined]
            if (self.haiku_name(construction.func) or "").rpartition(".")[2] not in _DEPTHWISE:
                continue
            if not self.is_haiku_module_class(self.haiku_name(construction.func)):
                continue
            others = [n for n in uses.get(target.value, []) if n is not target]
            call = calls.get(id(others[0])) if len(others) == 1 and rebound.count(target.value) == 1 else None
            first = call.args[0] if call is not None and call.args else None
            if first is None or first.keyword is not None or first.star or not isinstance(first.value, cst.Name):
                continue
            argument = first.value.value
            if argument in parameters and argument not in rebound and argument != "self":
                self._depthwise_inputs[id(construction)] = first.value

    # -- naming -------------------------------------------------------------------
    def _name_constructions(self, node: cst.ClassDef, plan: ClassPlan) -> None:
        per_method: dict[str, dict[int, str]] = {}
        for method in _methods(node):  # first: properties creating a variable move to setup()
            planned = properties.plan_property(method, node, self.haiku_name, self.resolve_spelling)
            if planned is not None:  # its calls are rewritten (or kept) with the property as a whole
                self._skipped.update(id(n) for n in walk(method) if isinstance(n, cst.Call))
                if isinstance(planned, str):
                    plan.todo_methods[method.name.value] = planned
                else:
                    plan.variable_properties[method.name.value] = planned
        for method in _methods(node):
            method_name = method.name.value
            if method_name in plan.variable_properties or method_name in plan.todo_methods:
                continue
            transparent = any(self.haiku_name(_decorator_target(d)) == "haiku.transparent" for d in method.decorators)
            namer = ScopeNamer()
            # A transparent method's children are named in its caller's scope:
            # no static name, and it needs no compact scope of its own.
            needs_scope = self._scan(method.body, namer, dynamic=transparent)
            if needs_scope and method_name not in ("__init__", "__call__") and not transparent:
                sized = factory_methods.input_size_reason(method, node, self.haiku_name) is None  # read from kernels
                # Its own parameters (Haiku's `module/p`) can be made in setup() when nothing it computes shapes them.
                hoisted = scoped_params.hoistable(method, node, self.haiku_name) if self._creates_variables(method) else {}
                if node.name.value in self.state.root_classes and hoisted is not None and sized:
                    # Haiku's `~encode/linear` is Linen's compact_name_scope `encode/linear`;
                    # flax places that scope correctly only on the root module.
                    plan.decorators[method_name] = "compact_name_scope"
                    plan.hoisted_params.update(hoisted)
                    self._names.update({c.key: None for c in namer.constructions})
                    self._names.update(namer.names())
                    continue
                factory = factory_methods.plan_factory(method, node, self.haiku_name, self.construction_base)
                if isinstance(factory, factory_methods.FactoryMethod):  # builds the module in the caller's scope
                    plan.decorators[method_name] = "nowrap"
                    self._names.update({c.key: None for c in namer.constructions})
                    self._names.update(namer.names())
                    continue
                plan.todo_methods[method_name] = factory or properties.scoped_method_reason(method, _SCOPED_METHOD_REASON)
                self._skipped.update(id(n) for n in walk(method) if isinstance(n, cst.Call))
                continue
            self._names.update({c.key: None for c in namer.constructions})
            per_method[method_name] = namer.names()
            if plan.has_layer_stack:
                self._name_layer_stacks(method)
            if needs_scope and method_name == "__call__":
                plan.decorators[method_name] = "compact"
        # Haiku keeps `~/linear` (built in __init__) apart from `linear` (built in
        # __call__); Linen has one namespace for setup() and the compact method.
        # On a clash the setup() submodule keeps its attribute name instead.
        compact = set(per_method.get("__call__", {}).values())
        init = per_method.get("__init__", {})
        per_method["__init__"] = {key: name for key, name in init.items() if name not in compact}
        for names in per_method.values():
            self._names.update(names)

    def _scan(self, node: cst.CSTNode, namer: ScopeNamer, *, dynamic: bool) -> bool:
        """Records constructions in evaluation order; True if the scope needs a compact scope."""
        needs = False
        for child in node.children:
            if isinstance(child, cst.With) and name_scope.scope_name(child, self.haiku_name) is not None:
                # Haiku names the block's modules inside the scope, fresh counters (name_scope.py).
                scope_namer = ScopeNamer()
                needs |= self._scan(child.body, scope_namer, dynamic=dynamic)
                self._names.update({c.key: None for c in scope_namer.constructions})
                self._names.update(scope_namer.names())
                continue
            if isinstance(child, cst.FunctionDef) and self._is_layer_stack_body(child):
                # Haiku names the body's modules in the stack's own scope, fresh counters.
                body_namer = ScopeNamer()
                self._scan(child.body, body_namer, dynamic=False)
                self._in_stack_body.update(id(n) for n in walk(child) if isinstance(n, cst.Call))
                self._names.update({c.key: None for c in body_namer.constructions})
                self._names.update(body_namer.names())
                needs = True
                continue
            inner_dynamic = dynamic or isinstance(child, _DYNAMIC)
            needs |= self._scan(child, namer, dynamic=inner_dynamic)
        if isinstance(node, cst.Call):
            base = self.construction_base(node)
            if _calls_one_of(node, self._builders):
                needs = True  # the helper's layers attach to this method's scope (auto-named, as in Haiku's caller)
            if base is not False:
                explicit = _explicit_name(node) is not None or id(node) in self._configs and base is not None
                namer.add(Construction(id(node), base, explicit, dynamic))
                needs = True
            if isinstance(node.func, cst.Call) and self.is_haiku_module_class(self.haiku_name(node.func.func)):
                self._called_at_once.add(id(node.func))
            elif self.haiku_name(node.func) in VARIABLE_CALLS and not self._writes_held_state(node):
                needs = True
        return needs

    def _writes_held_state(self, call: cst.Call) -> bool:
        """``hk.set_state`` on an entry setup() made (a state property): a ``.value`` write, no compact scope."""
        if self.haiku_name(call.func) != "haiku.set_state" or not self._converting():
            return False
        held = self._plan().variable_properties.values()
        return state.literal_name(call, state.SET_STATE) in {p.entry for p in held if p.kind == "state"}

    def _creates_variables(self, method: cst.FunctionDef) -> bool:
        """Haiku puts a method's own parameters in the module's bucket, not under ``~method``."""
        calls = ("haiku.get_parameter", "haiku.get_state", "haiku.set_state")
        return any(isinstance(n, cst.Call) and self.haiku_name(n.func) in calls for n in walk(method))

    def _name_layer_stacks(self, method: cst.FunctionDef) -> None:
        """Haiku names each layer stack of a method ``__layer_stack_no_per_layer``, ``..._1``, ... in order."""
        namer = ScopeNamer()
        for node in _ordered(method.body):
            if isinstance(node, cst.Call) and self.haiku_name(node.func) in lifted.LAYER_STACK_CALLS:
                base = lifted.stack_base(node)
                namer.add(Construction(id(node), base, False, False))
        self._stack_names.update(namer.names())

    def _is_layer_stack_body(self, node: cst.FunctionDef) -> bool:
        """A nested def decorated with ``@hk.layer_stack(n)``."""
        return any(self.haiku_name(_decorator_target(d)) in lifted.LAYER_STACK_CALLS for d in node.decorators)

    def construction_base(self, call: cst.Call) -> str | None | bool:
        """The Haiku base name a module construction gets; False if not a construction."""
        if not isinstance(call.func, (cst.Name, cst.Attribute)):
            return False  # `hk.Linear(3)(x)` calls a module; it does not build one
        qualname = self.haiku_name(call.func)
        local = self.local_name(call.func)
        if not self.is_haiku_module_class(qualname) and local is None:
            return False
        explicit = _explicit_name(call)
        if explicit is not None:
            return explicit.evaluated_value if isinstance(explicit, cst.SimpleString) else None
        if id(call) in self._configs:  # `name` set by the config dict: the Haiku name unless a caller overrides it
            return literal_name(self._configs[id(call)])
        if local is not None:
            return self.state.module_classes[local]
        return camel_to_snake(qualname.rsplit(".", 1)[-1])  # type: ignore[union-attr]

    # -- rewriting inside converting classes -----------------------------
    def _converting(self) -> bool:
        return bool(self._classes) and self._classes[-1] is not None

    def leave_Call(self, original_node: cst.Call, updated_node: cst.Call) -> cst.BaseExpression:
        if not self._converting() or id(original_node) in self._skipped:
            return updated_node
        if self._is_remat_in_stack(original_node):
            return updated_node  # rewritten with its layer_stack(n)(...) call, below
        stacked = self._remat_stack(original_node, updated_node)
        if stacked is not None:
            return stacked
        key = id(original_node)
        if key in self._names and key not in self._called_at_once:
            return self._construction(original_node, updated_node)
        qualname = self.haiku_name(original_node.func)
        if qualname == "haiku.get_parameter":
            param = self._get_parameter(original_node, updated_node)
            attribute = self._plan().hoisted_params.get(key)
            if attribute is None or param is updated_node:  # not hoisted, or kept under its TODO
                return param
            self._plan().property_setup.append(scoped_params.setup_line(attribute, param))  # type: ignore[arg-type]
            return cst.Attribute(cst.Name("self"), cst.Name(attribute))
        if qualname in _RNG_AND_STATE:
            return self._rng_or_state(original_node, updated_node, qualname)
        if id(original_node.func) in self._called_at_once:
            return self._immediate_call(original_node.func, updated_node)  # type: ignore[arg-type]
        return updated_node

    def _is_remat_in_stack(self, call: cst.Call) -> bool:
        """``hk.remat(f)`` given straight to ``hk.layer_stack(n)(...)``."""
        return self.haiku_name(call.func) in lifted.REMAT_CALLS and id(call) in self._stack_remats

    def _remat_stack(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression | None:
        """``hk.layer_stack(n)(hk.remat(f))`` -> ``layer_stack(n, remat={...})(f)``, else None."""
        stack = updated.func
        if not (isinstance(original.func, cst.Call) and self.haiku_name(original.func.func) in lifted.LAYER_STACK_CALLS):
            return None
        if len(original.args) != 1 or not isinstance(original.args[0].value, cst.Call):
            return None
        if not (isinstance(stack, cst.Call) and isinstance(stack.func, cst.Name) and stack.func.value == "layer_stack"):
            return None  # the stack itself stayed Haiku (under a TODO)
        result = lifted.remat_in_stack(stack, updated.args[0].value)  # type: ignore[arg-type]
        if isinstance(result, Unsupported):
            self.todo("hk.remat", result.reason)
            return updated
        new_stack, fun = result
        return updated.with_changes(func=new_stack, args=[updated.args[0].with_changes(value=fun)])

    def visit_Call(self, node: cst.Call) -> None:
        if isinstance(node.func, cst.Call) and self.haiku_name(node.func.func) in lifted.LAYER_STACK_CALLS:
            for arg in node.args[:1]:
                if isinstance(arg.value, cst.Call) and self.haiku_name(arg.value.func) in lifted.REMAT_CALLS:
                    self._stack_remats.add(id(arg.value))

    def _plan(self) -> ClassPlan:
        return self._plans[self._classes[-1]]  # type: ignore[index]

    def _rng_or_state(self, original: cst.Call, updated: cst.Call, qualname: str) -> cst.BaseExpression:
        """RNG keys, hk.dropout, hk.get_state and hk.set_state inside a module method."""
        nn, jnp = self.state.nn, self.state.jnp
        if qualname in rng.KEY_CALLS:
            self.state.uses_rng = True
            return self.apply_rewrite(rng.rewrite_key_call(updated, qualname), qualname, updated)
        if qualname == "haiku.dropout":
            bound = _bind(original, ("rng", "rate", "x", "broadcast_dims"))
            first = bound.get("rng") if bound else None
            implicit = isinstance(first, cst.Call) and self.haiku_name(first.func) == "haiku.next_rng_key"
            self.state.uses_rng = self.state.uses_rng or implicit
            return self.apply_rewrite(rng.rewrite_dropout(updated, implicit_key=implicit, nn=nn), qualname, updated)
        if qualname == "haiku.running_init":
            return self.apply_rewrite(utilities.rewrite_running_init(updated), qualname, updated)
        if qualname in lifted.LAYER_STACK_CALLS:
            return self.apply_rewrite(lifted.rewrite_layer_stack(updated, self._stack_names.get(id(original))), qualname, updated)
        if qualname in lifted.SELF_LIFTED and id(original) in self._in_stack_body:
            self.todo(
                _short(qualname),
                "inside an hk.layer_stack body the lifted transform must lift the scanned body module, not self:"
                " apply it to the whole layer (nn.scan(nn.remat(LayerStackBody), ...)) or port by hand",
            )
            return updated
        if qualname in lifted.REMAT_CALLS:
            return self.apply_rewrite(lifted.rewrite_remat(updated, nn=nn), qualname, updated)
        if qualname == "haiku.vmap":
            return self.apply_rewrite(lifted.rewrite_vmap(updated, nn=nn), qualname, updated)
        if qualname == "haiku.scan":
            return self.apply_rewrite(lifted.rewrite_scan(updated, nn=nn), qualname, updated)
        if qualname == "haiku.map":
            return self.apply_rewrite(lifted.rewrite_map(updated, nn=nn), qualname, updated)
        if qualname == "haiku.cond":
            return self.apply_rewrite(lifted.rewrite_cond(updated, nn=nn), qualname, updated)
        if qualname == "haiku.switch":
            return self.apply_rewrite(lifted.rewrite_switch(updated, nn=nn), qualname, updated)
        if qualname in lifted.LOOP_CALLS:
            return self.apply_rewrite(lifted.rewrite_loop(updated, qualname, nn=nn), qualname, updated)
        if qualname == "haiku.get_state":
            bound = _bind(original, ("name", "shape", "dtype", "init"))
            init_qualname = self.qualname_of(bound["init"]) if bound and "init" in bound else None
            result = state.rewrite_get_state(updated, init_qualname, jnp=jnp, nn=nn, resolver=self.resolve_spelling)
            return self.apply_rewrite(result, qualname, updated)
        name = state.literal_name(original, state.SET_STATE)
        if name is None:
            self.todo("hk.set_state", "the state name is not a string literal; use self.put_variable('state', name, value)")
            return updated
        guard = name in self._plan().initial_state
        if guard and id(original) not in self._statement_calls:
            self.todo("hk.set_state", "inside an expression; Haiku's init keeps the initial state: write it as a statement under `if not self.is_initializing():`")
            return updated
        result = self.apply_rewrite(state.rewrite_set_state(updated), qualname, updated)
        held = next((p for p in self._plan().variable_properties.values() if p.kind == "state" and p.entry == name), None)
        if held is not None and result is not updated and id(original) in self._statement_calls:
            self._value_writes[id(result)] = held.attribute  # written through the variable setup() made
        if guard and result is not updated:
            self._guarded.add(id(result))
        return result

    def visit_SimpleStatementLine(self, node: cst.SimpleStatementLine) -> None:
        if len(node.body) == 1 and isinstance(node.body[0], cst.Expr) and isinstance(node.body[0].value, cst.Call):
            self._statement_calls.add(id(node.body[0].value))

    def leave_SimpleStatementLine(self, original_node, updated_node):  # type: ignore[no-untyped-def]
        if self._converting() and self._method_stack and rng.is_deletable_reserve(original_node, self.haiku_name):
            return cst.RemoveFromParent()  # it only pre-splits Haiku's key sequence (rng.py)
        body = updated_node.body
        if len(body) != 1 or not isinstance(body[0], cst.Expr):
            return updated_node
        call = body[0].value
        if id(call) in self._value_writes:
            updated_node = updated_node.with_changes(body=[properties.value_write(self._value_writes[id(call)], call)])  # type: ignore[arg-type]
        return state.guarded(updated_node) if id(call) in self._guarded else updated_node

    def _config_spreads(self, init: cst.FunctionDef) -> dict[str, cst.Call]:
        """``{name: call}`` for the Haiku layer constructions taking ``**name`` (names spread once)."""
        spreads: dict[str, cst.Call] = {}
        seen: set[str] = set()
        for node in walk(init):
            name = spread_name(node) if isinstance(node, cst.Call) else None
            if name is None:
                continue
            tail = (self.haiku_name(node.func) or "").rpartition(".")[2]  # type: ignore[attr-defined]
            if name not in seen and tail in layer_configs.LAYERS and self.is_haiku_module_class(self.haiku_name(node.func)):  # type: ignore[attr-defined]
                spreads[name] = node  # type: ignore[assignment]
            else:
                spreads.pop(name, None)
            seen.add(name)
        return spreads

    def _config_construction(self, original: cst.Call, updated: cst.Call, qualname: str) -> cst.BaseExpression:
        """``hk.Conv2D(**config)`` -> ``nn.Conv(**config)``, the config's known keys translated (layer_configs.py)."""
        config = self._configs[id(original)]
        synthetic = layer_configs.synthetic_call(_without_name(updated) if _explicit_name(updated) is None else updated, config)
        if isinstance(synthetic, str):
            return self.apply_rewrite(Unsupported(synthetic), qualname, updated)
        name = self._names[id(original)] if literal_name(config) is None else None
        result = rewrite_layer(synthetic, qualname, name=name, nn=self.state.nn, jnp=self.state.jnp, resolver=self._layer_resolver())
        if isinstance(result, Unsupported):
            return self.apply_rewrite(result, qualname, updated)
        sig = LAYERS[qualname.rpartition(".")[2]][0]
        bound = bind(cst.Call(updated.func, args=[a for a in updated.args if not a.star]), sig)
        split = "unsupported arguments" if isinstance(bound, Unsupported) else layer_configs.split_flax_call(result.expr, set(bound), config)
        if isinstance(split, str):
            return self.apply_rewrite(Unsupported(split), qualname, updated)
        call, pairs = split
        layer = f"{self.state.nn}.{call.func.attr.value}"  # type: ignore[attr-defined]
        rewritten = self.apply_rewrite(Rewrite(call, result.imports, result.note), qualname, updated)
        if rewritten is not updated:  # the dict's setdefault lines change only with the layer
            self._plan().layer_configs[config.name] = layer_configs.setdefault_lines(config, pairs, layer, _short(qualname))
        return rewritten

    def _construction(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        name = self._names[id(original)]
        if self.local_name(original.func) is not None:
            return _with_name(updated, name)
        qualname = self.haiku_name(original.func) or ""
        if id(original) in self._configs:
            return self._config_construction(original, updated, qualname)
        call = _without_name(updated) if name is not None else updated
        result = rewrite_layer(
            call, qualname, name=name, nn=self.state.nn, jnp=self.state.jnp, resolver=self._layer_resolver(),
            inputs=self._depthwise_inputs.get(id(original)),
        )
        return self.apply_rewrite(result, qualname, updated)

    def _immediate_call(self, inner: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        """``hk.Linear(3)(x, precision=p)``: call-time arguments may move into the constructor."""
        qualname = self.haiku_name(inner.func) or ""
        name = self._names[id(inner)]
        constructor = updated.func
        assert isinstance(constructor, cst.Call)
        constructor = _without_name(constructor) if name is not None else constructor
        whole = rewrite_layer_call(
            updated.with_changes(func=constructor), qualname, name=name, nn=self.state.nn, jnp=self.state.jnp,
            resolver=self._layer_resolver(),
        )
        if whole is not None:
            return self.apply_rewrite(whole, qualname, updated)
        result = rewrite_layer(constructor, qualname, name=name, nn=self.state.nn, jnp=self.state.jnp, resolver=self._layer_resolver())
        return updated.with_changes(func=parenthesized(self.apply_rewrite(result, qualname, updated.func)))


    def _get_parameter(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        args = _bind(updated, ("name", "shape", "dtype", "init"))
        if args is None or "init" not in args or "shape" not in args:
            self.todo("hk.get_parameter", "no init= given (or arguments not understood); pass an initializer to self.param")
            return updated
        init_node = _bind(original, ("name", "shape", "dtype", "init"))["init"]  # type: ignore[index]
        init_qualname = self.resolve_spelling(init_node) if isinstance(init_node, cst.Name) else None
        if init_qualname != BOUND_INITIALIZER:  # a name bound to an initializer (bindings.py) passes through
            init_qualname = self.qualname_of(init_node)
        init = rewrite_initializer(
            args["init"], init_qualname, nn=self.state.nn, jnp=self.state.jnp, resolver=self.resolve_spelling
        )
        if isinstance(init, Unsupported):
            self.todo("hk.get_parameter", init.reason)
            return updated
        for spec in init.imports:
            self.need_import(spec)
        call_args = [cst.Arg(args["name"]), cst.Arg(init.expr), cst.Arg(args["shape"])]
        if "dtype" in args:
            call_args.append(cst.Arg(args["dtype"]))
        return cst.Call(func=cst.Attribute(cst.Name("self"), cst.Name("param")), args=call_args)

    def qualname_of(self, node: cst.CSTNode) -> str | None:
        target = node.func if isinstance(node, cst.Call) else node
        names = self.get_metadata(QualifiedNameProvider, target, set())
        return min((q.name for q in names), default=None)

    def leave_Attribute(self, original_node: cst.Attribute, updated_node: cst.Attribute) -> cst.BaseExpression:
        plan = self._plans.get(self._classes[-1]) if self._converting() else None
        if plan is None or plan.init is None:
            return updated_node
        if m.matches(updated_node, m.Attribute(m.Name("self"), m.Name())):
            new = plan.init.renames.get(updated_node.attr.value)
            if new is not None:
                return updated_node.with_changes(attr=cst.Name(new))
        return updated_node

    # -- the class itself -------------------------------------------------------
    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        if self._converting() and id(node) in self._method_ids:
            self._method_stack.append(node.name.value)

    def leave_FunctionDef(self, original_node: cst.FunctionDef, updated_node: cst.FunctionDef):  # type: ignore[no-untyped-def]
        if not self._converting() or id(original_node) not in self._method_ids:
            return updated_node
        self._method_stack.pop()
        plan = self._plans[self._classes[-1]]  # type: ignore[index]
        prop = plan.variable_properties.get(updated_node.name.value)
        if prop is not None:
            return self._property_to_setup(plan, prop, updated_node)
        decorators = [d for d in updated_node.decorators if self.haiku_name(_decorator_target(d)) != "haiku.transparent"]
        reason = plan.todo_methods.get(updated_node.name.value)
        if reason is not None:
            self.todo(f"method {updated_node.name.value}", reason)
            return updated_node
        kind = plan.decorators.get(updated_node.name.value)
        if kind in ("nowrap", "compact_name_scope"):
            updated_node = factory_methods.rewrite_input_sizes(updated_node)
        if kind is not None:
            decorators.insert(0, cst.Decorator(self.nn_attr(kind)))
        return updated_node.with_changes(decorators=decorators)

    def _property_to_setup(self, plan: ClassPlan, prop: properties.VariableProperty, method: cst.FunctionDef):  # type: ignore[no-untyped-def]
        """Moves a variable-creating property into setup(); what is left of it (or nothing)."""
        built = properties.setup_code(prop, method, nn=self.state.nn, jnp=self.state.jnp, resolver=self.resolve_spelling)
        assert not isinstance(built, Unsupported), "plan_property built it once already"
        self.need_nn()
        for spec in built.imports:
            self.need_import(spec)
        plan.property_setup.extend(built.statements)
        return built.kept if built.kept is not None else cst.RemovalSentinel.REMOVE

    def leave_ClassDef(self, original_node: cst.ClassDef, updated_node: cst.ClassDef):  # type: ignore[no-untyped-def]
        name = self._classes.pop()
        plan = self._plans.get(original_node.name.value)
        if plan is None:
            return updated_node
        if plan.init is not None and plan.init.problem:
            self.todo(f"class {original_node.name.value}", plan.init.problem)
            return updated_node
        assert name is not None
        bases = [self._base(o, u) for o, u in zip(original_node.bases, updated_node.bases)]
        self._forget_init_imports(original_node)
        self._layer_config_lines = plan.layer_configs
        body = self._class_body(original_node, updated_node, plan.init)
        updated_node = updated_node.with_changes(bases=bases, body=updated_node.body.with_changes(body=body))
        keep = [not dataclass_modules.is_plain_dataclass(d, self.qualname_of) for d in original_node.decorators]
        if all(keep):
            return updated_node
        RemoveImportsVisitor.remove_unused_import(self.context, "dataclasses")
        RemoveImportsVisitor.remove_unused_import(self.context, "dataclasses", "dataclass")
        RemoveImportsVisitor.remove_unused_import(self.context, "typing", "Optional")  # the name field's type
        return dataclass_modules.strip(updated_node, keep)

    def _base(self, original: cst.Arg, updated: cst.Arg) -> cst.Arg:
        if self.haiku_name(original.value) in ("haiku.Module", "haiku.RNNCore"):
            return updated.with_changes(value=self.nn_attr("Module"))
        return updated

    def _forget_init_imports(self, node: cst.ClassDef) -> None:
        """Schedules removal of imports only ``__init__``'s ``name`` annotation used."""
        init = _method(node, "__init__")
        if init is None:
            return
        for param in init.params.params:
            if param.name.value == "name" and param.annotation is not None:
                for sub in walk(param.annotation):
                    qualname = self.qualname_of(sub) if isinstance(sub, cst.Name) else None
                    if qualname and "." in qualname and "<locals>" not in qualname:
                        module, _, obj = qualname.rpartition(".")
                        RemoveImportsVisitor.remove_unused_import(self.context, module, obj)

    def _class_body(
        self, original: cst.ClassDef, node: cst.ClassDef, init: InitPlan | None
    ) -> list[cst.BaseStatement]:
        body: list[cst.BaseStatement] = []
        for statement in node.body.body:
            if isinstance(statement, cst.FunctionDef) and statement.name.value == "__init__":
                assert init is not None
                original_init = _method(original, "__init__")
                assert original_init is not None
                setup = _updated_setup(original_init, statement, init)
                initializer_fields = self._plans[original.name.value].initializer_fields.names
                body.extend(self._fields(init, statement, setup, has_docstring=_has_docstring(node), initializer_fields=initializer_fields))
            else:
                body.append(statement)
        moved = self._plans[original.name.value].property_setup
        return properties.add_to_setup(body, moved) if moved else body

    def _fields(
        self,
        init: InitPlan,
        old: cst.FunctionDef,
        setup: list[cst.BaseStatement],
        *,
        has_docstring: bool,
        initializer_fields: frozenset[str] = frozenset(),
    ) -> list[cst.BaseStatement]:
        out: list[cst.BaseStatement] = []
        if init.docstring is not None and not has_docstring:
            out.append(init.docstring)
        fields = [self._field(item, item.name in initializer_fields) for item in init.fields if not item.kw_only]
        keyword_only = [self._field(item, item.name in initializer_fields) for item in init.fields if item.kw_only]
        if keyword_only:
            # Fields a subclass fixes: keyword-only, so they leave the positional order as it was.
            self.need_import(_DATACLASSES)
            marker = cst.AnnAssign(target=cst.Name("_"), annotation=cst.Annotation(cst.parse_expression("dataclasses.KW_ONLY")))
            fields += [cst.SimpleStatementLine([marker]), *keyword_only]
        # The first field keeps the blank line above __init__ (one after a docstring moved up from it).
        first = old.leading_lines or ([cst.EmptyLine(indent=False)] if out else [])
        for index, line in enumerate(fields):
            out.append(line.with_changes(leading_lines=first) if index == 0 else line)
        if setup:
            out.append(self._setup(init, setup))
        return out

    def _field(self, item: Field, takes_initializer: bool = False) -> cst.SimpleStatementLine:
        annotation = item.annotation
        if annotation is not None and takes_initializer:
            # The field now takes a Flax initializer (init_fields.py); say so in its type.
            annotation = annotation.visit(_FlaxInitializerType(self.haiku_name, self.nn_attr("initializers")))
        if annotation is None:
            self.need_import(_ANY)
            annotation = cst.Name("Any")
        return cst.SimpleStatementLine(
            [cst.AnnAssign(target=cst.Name(item.name), annotation=cst.Annotation(annotation), value=item.default)]
        )

    def _setup(self, init: InitPlan, setup: list[cst.BaseStatement]) -> cst.FunctionDef:
        # The statements were already rewritten (layers, names, renames) when
        # __init__'s body was left; only the argument reads remain.
        reads, reassigns = list(init.reads), list(init.reassigns)
        for name, lines in self._layer_config_lines.items():  # translated config dicts (layer_configs.py)
            setup, origin = layer_configs.regroup(setup, name, lines)
            # A new line reads what the statement it follows left: its reassigned argument is a local.
            reads = [{k: v for k, v in reads[i].items() if not new or k != reassigns[i]} for i, new in origin]
            reassigns = [None if new else reassigns[i] for i, new in origin]
        statements = [
            statement.visit(_ArgumentsToSelf(statement_reads, argument))
            for statement, statement_reads, argument in zip(setup, reads, reassigns, strict=True)
        ]
        statements = build_then_store(statements)
        if statements and not any(line.comment for line in statements[0].leading_lines):
            # What __init__ had above its first kept statement (super().__init__, stored arguments) is gone.
            statements[0] = statements[0].with_changes(leading_lines=[])
        return cst.FunctionDef(
            name=cst.Name("setup"),
            params=cst.Parameters([cst.Param(cst.Name("self"))]),
            body=cst.IndentedBlock(statements),  # type: ignore[arg-type]
            leading_lines=[] if not init.fields else [cst.EmptyLine(indent=False)],
        )


_ANY = ImportSpec("typing", "Any", None)
_DATACLASSES = ImportSpec("dataclasses", None, None)


class _FlaxInitializerType(cst.CSTTransformer):
    """``hk.initializers.Initializer`` -> ``nn.initializers.Initializer`` inside one annotation."""

    def __init__(self, haiku_name, initializers: cst.Attribute) -> None:  # type: ignore[no-untyped-def]
        super().__init__()
        self.haiku_name = haiku_name
        self.initializers = initializers

    def leave_Attribute(self, original_node: cst.Attribute, updated_node: cst.Attribute) -> cst.BaseExpression:
        if self.haiku_name(original_node) == "haiku.initializers.Initializer":
            return cst.Attribute(self.initializers, cst.Name("Initializer"))
        return updated_node
_RNG_AND_STATE = rng.KEY_CALLS | lifted.SELF_LIFTED | lifted.LAYER_STACK_CALLS | {"haiku.running_init", "haiku.dropout", "haiku.get_state", "haiku.set_state"}
# Linen allows one compact method, and nn.compact_name_scope (the Linen twin of
# Haiku's `~method/` scopes) attaches its scope to the caller's module when the
# module is nested (flax 0.12: setup runs before the module is on the stack),
# so its parameters would land in the wrong place.
_SCOPED_METHOD_REASON = (
    "builds submodules or parameters inline in a method other than __call__; Linen allows one"
    " @nn.compact method: build them in setup() and use them here, or move this code into __call__"
)


class _ArgumentsToSelf(cst.CSTTransformer):
    """Reads of constructor arguments become reads of the fields: ``x`` → ``self.x``.

    ``reads`` maps each argument still read from its field in this statement
    to that field; ``local`` is the argument a top-level ``x = f(x)`` turns into
    a local of ``setup()``: its target stays a plain name.
    """

    def __init__(self, reads: dict[str, str], local: str | None) -> None:
        super().__init__()
        self.reads = reads
        self.local = local
        self.protected: set[int] = set()

    def visit_AssignTarget(self, node: cst.AssignTarget) -> None:
        if isinstance(node.target, cst.Name) and node.target.value == self.local:
            self.protected.add(id(node.target))

    def visit_Attribute(self, node: cst.Attribute) -> None:
        self.protected.add(id(node.attr))

    def visit_Arg(self, node: cst.Arg) -> None:
        if node.keyword is not None:
            self.protected.add(id(node.keyword))

    def visit_Param(self, node: cst.Param) -> None:
        self.protected.add(id(node.name))

    def visit_Lambda(self, node: cst.Lambda) -> None:
        self._shadow(node.body, _param_names(node.params))

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self._shadow(node.body, _param_names(node.params))

    def _shadow(self, body: cst.CSTNode, names: set[str]) -> None:
        """A nested lambda's or def's own parameter of the same name is not the argument.

        (Defaults are evaluated outside, so only the body is protected.)
        """
        for sub in walk(body):
            if isinstance(sub, cst.Name) and sub.value in names:
                self.protected.add(id(sub))

    def leave_Name(self, original_node: cst.Name, updated_node: cst.Name) -> cst.BaseExpression:
        if original_node.value in self.reads and id(original_node) not in self.protected:
            return cst.Attribute(cst.Name("self"), cst.Name(self.reads[original_node.value]))
        return updated_node


def _param_names(params: cst.Parameters) -> set[str]:
    every = [*params.posonly_params, *params.params, *params.kwonly_params]
    for star in (params.star_arg, params.star_kwarg):
        if isinstance(star, cst.Param):
            every.append(star)
    return {p.name.value for p in every}


def _updated_setup(original: cst.FunctionDef, updated: cst.FunctionDef, plan: InitPlan) -> list[cst.BaseStatement]:
    """The setup statements as they stand in the already-rewritten ``__init__``.

    ``plan.setup`` holds original statements; rewriting keeps every statement
    of the body in place, so the same positions hold their new versions.
    """
    positions = [i for i, s in enumerate(original.body.body) if any(s is kept for kept in plan.setup)]
    return [updated.body.body[i] for i in positions]  # type: ignore[misc]


_DEPTHWISE = ("DepthwiseConv1D", "DepthwiseConv2D", "DepthwiseConv3D")


def _bound_names(function: cst.FunctionDef) -> list[str]:
    """Every name the body of ``function`` binds, once per binding (parameters excluded)."""
    bound: list[str] = []
    targets: list[cst.CSTNode] = []
    for node in walk(function.body):
        if isinstance(node, (cst.AssignTarget, cst.AugAssign, cst.AnnAssign, cst.For, cst.CompFor, cst.NamedExpr)):
            targets.append(node.target)
        elif isinstance(node, cst.AsName):
            targets.append(node.name)
        elif isinstance(node, (cst.FunctionDef, cst.ClassDef)):
            bound.append(node.name.value)
        elif isinstance(node, (cst.Global, cst.Nonlocal)):
            bound.extend(n.name.value for n in node.names)
    for target in targets:
        attrs = {id(n.attr) for n in walk(target) if isinstance(n, cst.Attribute)}
        bound.extend(n.value for n in walk(target) if isinstance(n, cst.Name) and id(n) not in attrs)
    return bound


def _assigns_call(node: cst.CSTNode) -> bool:
    """``target = call(...)`` with one target."""
    return isinstance(node, cst.Assign) and len(node.targets) == 1 and isinstance(node.value, cst.Call)


def _ordered(node: cst.CSTNode):  # type: ignore[no-untyped-def]
    """Nodes in source order (pre-order, children left to right)."""
    yield node
    for child in node.children:
        yield from _ordered(child)


def _method(node: cst.ClassDef, name: str) -> cst.FunctionDef | None:
    return next((s for s in node.body.body if isinstance(s, cst.FunctionDef) and s.name.value == name), None)


def _methods(node: cst.ClassDef) -> list[cst.FunctionDef]:
    return [s for s in node.body.body if isinstance(s, cst.FunctionDef)]


def _has_docstring(node: cst.ClassDef) -> bool:
    first = node.body.body[0] if node.body.body else None
    return m.matches(first, m.SimpleStatementLine([m.Expr(m.SimpleString() | m.ConcatenatedString())]))


def _decorator_target(decorator: cst.Decorator) -> cst.BaseExpression:
    target = decorator.decorator
    return target.func if isinstance(target, cst.Call) else target


def _explicit_name(call: cst.Call) -> cst.BaseExpression | None:
    for arg in call.args:
        if arg.keyword is not None and arg.keyword.value == "name":
            return arg.value
    return None


def _without_name(call: cst.Call) -> cst.Call:
    args = [a for a in call.args if not (a.keyword is not None and a.keyword.value == "name")]
    if args:
        args[-1] = args[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
    return call.with_changes(args=args)


def _with_name(call: cst.Call, name: str | None) -> cst.Call:
    """Sets ``name="..."`` on a construction of a converted module class."""
    if name is None:
        return call
    value = cst.SimpleString(json.dumps(name))
    args = list(call.args)
    for index, arg in enumerate(args):
        if arg.keyword is not None and arg.keyword.value == "name":
            if isinstance(arg.value, cst.SimpleString) and arg.value.evaluated_value == name:
                return call
            args[index] = arg.with_changes(value=value)
            return call.with_changes(args=args)
    if args:
        args[-1] = args[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
    args.append(cst.Arg(value, keyword=cst.Name("name"), equal=_EQUAL))
    return call.with_changes(args=args)


_EQUAL = cst.AssignEqual(whitespace_before=cst.SimpleWhitespace(""), whitespace_after=cst.SimpleWhitespace(""))


def _bind(call: cst.Call, names: tuple[str, ...]) -> dict[str, cst.BaseExpression] | None:
    """Binds a call's arguments to parameter names; None for * / ** arguments."""
    bound: dict[str, cst.BaseExpression] = {}
    for index, arg in enumerate(call.args):
        if arg.star:
            return None
        key = arg.keyword.value if arg.keyword is not None else (names[index] if index < len(names) else None)
        if key is None or key not in names:
            return None
        bound[key] = arg.value
    return bound


def _short(qualname: str) -> str:
    return "hk." + qualname.removeprefix("haiku.")


def _calls_one_of(call: cst.Call, names: set[str]) -> bool:
    """``f(...)`` with ``f`` one of ``names`` (a plain name: a top-level function of the file)."""
    return isinstance(call.func, cst.Name) and call.func.value in names
