"""Reads of a Haiku layer's own attributes -> the Linen layer's field, or a TODO.

A Haiku layer is a plain Python object with public attributes (``hk.Linear``
keeps ``output_size``, ``with_bias``, ``w_init``, ...); the Linen layer flaxify
builds in its place has fields of other names, sometimes holding other values.
Left as written, ``self.proj.output_size`` fails at run time on an ``nn.Dense``
(which has ``features``). This pass runs after ``modules.py`` has rewritten the
constructions, and handles each read of an attribute Haiku's class defines on a
name that is provably such a layer: ``self.x`` assigned exactly once in the
class to a layer flaxify emitted (in ``setup()``), a local assigned exactly
once in its function and bound no other way, or an item of a list or tuple of
layers of one kind assigned once to ``self.x`` and never changed in place
(``self.x[i]``, or a loop or comprehension variable over ``self.x``,
``reversed(self.x)``, ``enumerate(self.x)``)::

    self.proj.output_size         -> self.proj.features
    self.proj.with_bias           -> self.proj.use_bias
    self.conv.output_channels     -> self.conv.features
    self.emb.embeddings           -> self.emb.embedding
    self.attn.model_size          -> (self.attn.model_size or self.attn.key_size * self.attn.num_heads)
    y = self.proj(x); self.proj.input_size
                                  -> ...; self.proj.get_variable("params", "kernel").shape[0]
    self.proj.module_name         -> kept, under
        # TODO(flaxify): hk.Linear.module_name: Haiku's full module path ('parent/~/name'); ...

``name`` needs nothing: flaxify passes each layer Haiku's name as ``name=``.

A rename is made only where the Linen field holds the very value Haiku's
attribute holds: both keep the constructor argument as passed, and flaxify
passes it through unchanged (``kernel_shape`` only when flaxify wrote the
Linen ``kernel_size`` as a tuple literal, Haiku's normalised form). Every other
attribute of the Haiku class (normalised in Haiku but not in Linen, like
``stride``; initializers, which Haiku keeps as passed and Linen as the
converted Flax function; ``module_name``; ``params_dict()``) stays as written
under ``# TODO(flaxify): hk.<Class>.<attribute>: <why and what to write>``.

``input_size`` is recorded by ``hk.Linear`` when it is called (``None`` before).
``nn.Dense`` records nothing, but its kernel has shape ``(input_size,
features)``; during ``apply`` the kernel exists before the first call, so the
kernel is read back only where the layer's call has certainly run earlier in
the same method (an earlier statement of the same block or an enclosing one,
or an earlier operand of the same statement, never a branch or loop body
that may be skipped); anywhere else a TODO says why (``factory_methods.py``
handles methods that only return a new module).

A name bound to a ``flax.linen`` layer counts as a Haiku layer only when the
original file did not import ``flax.linen`` itself (then every such layer is
one flaxify built); emitted helper classes (``MLP``, ``LSTM``, ...) are
recognised by name unless the file defines that name.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace

import libcst as cst
import libcst.matchers as m
from libcst.codemod import CodemodContext

from flaxify.migrate.base import FlaxifyCommand, MigrationState, import_table
from flaxify.migrate.layers import helper_class
from flaxify.migrate.layers_common import code, walk

#: Marks a Haiku attribute read flaxify rewrites by reading the kernel back (``input_size``).
_READ_BACK = "read-back"
_KERNEL_SIZE = '{r}.get_variable("params", "kernel").shape[0]'

_MODULE_NAME = (
    "Haiku's full module path ('parent/~/name'); Linen keeps only the local name ({r}.name) and its scope path "
    "({r}.path) in its own spelling: build the string you need from those"
)
_DICTS = (
    "Haiku's flat {'<module path>/w': array} dict of this module's WHAT; Linen nests variables by name and calls "
    "them differently ('kernel', not 'w'): read {r}.variables['COLLECTION'] after it has run"
)
_INITIALIZER = (
    "Haiku keeps the initializer as passed (None or a Haiku initializer taking (shape, dtype)); the Linen layer "
    "holds the converted Flax one taking (key, shape, dtype) in {field}: use that, or the Haiku value you passed"
)
_NORMALISED = (
    "Haiku normalises {what}; the Linen field {field} holds the value as passed to the constructor: compute the "
    "normalised value from the constructor argument"
)
_NONE = "no counterpart on the migrated LINEN: keep the value you passed to the constructor"
_CALL_TIME = "Haiku records it when the layer is called; Linen layers record nothing: compute it from the input"

#: Attributes every hk.Module has (its ``name`` is Linen's ``name``: flaxify passes Haiku's as name=).
_MODULE = {
    "module_name": _MODULE_NAME,
    "params_dict": _DICTS.replace("WHAT", "parameters").replace("COLLECTION", "params"),
    "state_dict": _DICTS.replace("WHAT", "state").replace("COLLECTION", "<its state collection>"),
}


@dataclass(frozen=True)
class Layer:
    """What a Haiku class's attributes become on the Linen layer flaxify builds for it.

    ``attributes`` maps each public attribute of the Haiku class to a template
    (``{r}`` is the receiver: a name or ``self.x``, cheap to read twice),
    :data:`_READ_BACK`, or ``None``: a TODO saying ``reasons[attribute]``.
    ``tuple_only`` names templates that hold only when the construction's
    argument (keyword, position) is a tuple literal, Haiku's normalised form.
    """

    haiku: str  # "hk.Linear"
    attributes: dict[str, str | None]
    reasons: dict[str, str]
    tuple_only: dict[str, tuple[str, int]] = field(default_factory=dict)
    # Haiku attributes that are also fields of the Linen class: on a layer that may be the
    # user's own (see Bound.certain) a read of one is left alone.
    linen_fields: frozenset[str] = frozenset()


def _layer(
    haiku: str,
    linen: str,
    same: str = "",
    renamed: dict[str, str] | None = None,
    todo: dict[str, str] | None = None,
    tuple_only: dict[str, tuple[str, int]] | None = None,
    linen_fields: str = "",
) -> Layer:
    """A :class:`Layer`: ``same`` attributes keep their name and value, ``renamed`` ones get a template."""
    attributes: dict[str, str | None] = {name: "{r}." + name for name in same.split()}
    attributes.update(renamed or {})
    reasons = {name: reason.replace("LINEN", linen) for name, reason in {**_MODULE, **(todo or {})}.items()}
    attributes.update({name: None for name in reasons if name not in attributes})  # tuple_only keeps a reason
    return Layer(haiku, attributes, reasons, tuple_only or {}, frozenset(linen_fields.split()) | set(same.split()))


def _init(field_name: str) -> str:
    return _INITIALIZER.format(field="{r}." + field_name)


def _normalised(what: str, field_name: str) -> str:
    return _NORMALISED.format(what=what, field="{r}." + field_name)


_CONV_TODO = {
    "stride": _normalised("stride to a per-dimension tuple", "strides"),
    "padding": (
        "Haiku turns padding into an upper-case string or a list of (low, high) pairs; the Linen field {r}.padding "
        "holds the value flaxify passed: compute it from the constructor argument"
    ),
    "kernel_dilation": _normalised("rate to a per-dimension tuple", "kernel_dilation"),
    "lhs_dilation": "Haiku's tuple of ones, one per spatial dimension; write the tuple",
    "num_spatial_dims": _NONE,
    "data_format": "Haiku's data_format string; the migrated layer works channels-last and has no data_format field",
    "channel_index": "Haiku's channel axis (-1 or 1); the migrated layer is channels-last: write -1",
    "dimension_numbers": "Haiku's lax.ConvDimensionNumbers; build it with jax.lax.conv_dimension_numbers",
    "mask": _NONE,
    "w_init": _init("kernel_init"),
    "b_init": _init("bias_init"),
    "kernel_shape": _normalised("kernel_shape to a per-dimension tuple", "kernel_size"),
}
_CONV_RENAMES = {"output_channels": "{r}.features", "with_bias": "{r}.use_bias", "kernel_shape": "{r}.kernel_size"}
_KERNEL_TUPLE = {"kernel_shape": ("kernel_size", 1)}

_NORM_RENAMES = {"eps": "{r}.epsilon", "create_scale": "{r}.use_scale", "create_offset": "{r}.use_bias"}
_NORM_TODO = {
    "axis": "Haiku normalises axis to a tuple or slice; the Linen norm's reduction_axes is spelled differently: write the axes",
    "param_axis": "Haiku's normalised axes of scale and offset; the Linen norm's feature_axes is spelled differently: write the axes",
    "scale_init": _init("scale_init"),
    "offset_init": _init("bias_init"),
}

#: Linen layers flaxify builds for Haiku ones, keyed by class (spelled ``nn.<Class>``).
LINEN: dict[str, Layer] = {
    "Dense": _layer(
        "hk.Linear",
        "nn.Dense",
        renamed={"output_size": "{r}.features", "with_bias": "{r}.use_bias", "input_size": _READ_BACK},
        todo={"w_init": _init("kernel_init"), "b_init": _init("bias_init")},
    ),
    "Conv": _layer(
        "hk.ConvND", "nn.Conv", "feature_group_count", _CONV_RENAMES, _CONV_TODO, _KERNEL_TUPLE, "padding mask kernel_dilation"
    ),
    "ConvTranspose": _layer(
        "hk.ConvNDTranspose",
        "nn.ConvTranspose",
        "",
        _CONV_RENAMES,
        {**_CONV_TODO, "output_shape": _NONE},
        _KERNEL_TUPLE,
        "padding mask kernel_dilation",
    ),
    "LayerNorm": _layer("hk.LayerNorm", "nn.LayerNorm", "use_fast_variance", _NORM_RENAMES, _NORM_TODO),
    "InstanceNorm": _layer(
        "hk.InstanceNorm",
        "nn.InstanceNorm",
        "use_fast_variance",
        _NORM_RENAMES,
        {**_NORM_TODO, "data_format": _CONV_TODO["data_format"]},
    ),
    "GroupNorm": _layer(
        "hk.GroupNorm",
        "nn.GroupNorm",
        renamed={**_NORM_RENAMES, "groups": "{r}.num_groups"},
        todo={
            **_NORM_TODO,
            "data_format": _CONV_TODO["data_format"],
            "channel_index": _CONV_TODO["channel_index"],
            "rank": _CALL_TIME,
            "group_shape": _CALL_TIME,
            "first_input_shape": _CALL_TIME,
        },
    ),
    "RMSNorm": _layer(
        "hk.RMSNorm", "nn.RMSNorm", renamed={"eps": "{r}.epsilon", "create_scale": "{r}.use_scale"}, todo=_NORM_TODO
    ),
    # Haiku keeps tuple(layers); nn.Sequential keeps the list flaxify passed (of the migrated layers).
    "Sequential": _layer("hk.Sequential", "nn.Sequential", renamed={"layers": "tuple({r}.layers)"}),
    "Embed": _layer(
        "hk.Embed",
        "nn.Embed",
        renamed={"vocab_size": "{r}.num_embeddings", "embed_dim": "{r}.features", "embeddings": "{r}.embedding"},
        todo={
            "lookup_style": "only ARRAY_INDEX lookups are migrated (nn.Embed gathers rows): write 'ARRAY_INDEX'",
            "precision": "nn.Embed has no precision (it gathers rows): keep the value you passed",
            "w_init": _init("embedding_init"),
        },
    ),
}

#: The file's own hk.Module subclasses, now Linen modules: only what every hk.Module has.
USER_MODULE = _layer("hk.Module", "Linen module")

#: Emitted helper classes (Haiku's class names; most fields take Haiku's arguments as passed).
HELPERS: dict[str, Layer] = {
    "MLP": _layer(
        "hk.nets.MLP",
        "MLP helper",
        "activation activate_final",
        {"with_bias": "{r}.use_bias", "output_size": "({r}.output_sizes[-1] if {r}.output_sizes else None)"},
        {
            "layers": (
                "Haiku's tuple of hk.Linear built in __init__; the emitted MLP builds its nn.Dense layers when called "
                "(named linear_i): read their variables from {r}.variables['params']['linear_i']"
            ),
            "reverse": (
                "the emitted MLP has no reverse(): build the mirror MLP(output_sizes=...) from the sizes you know, "
                "with name= (Haiku names it inside this module's ~reverse scope)"
            ),
            "w_init": _init("kernel_init"),
            "b_init": _init("bias_init"),
        },
    ),
    "LSTM": _layer("hk.LSTM", "LSTM helper", "hidden_size initial_state"),
    "ConvLSTM": _layer(
        "hk.ConvNDLSTM",
        "ConvLSTM helper",
        "num_spatial_dims output_channels kernel_shape initial_state",
        {"input_shape": "tuple({r}.input_shape)"},
    ),
    "VanillaRNN": _layer("hk.VanillaRNN", "VanillaRNN helper", "hidden_size initial_state double_bias"),
    "GRU": _layer(
        "hk.GRU",
        "GRU helper",
        "hidden_size initial_state",
        todo={"w_i_init": _init("w_i_init"), "w_h_init": _init("w_h_init"), "b_init": _init("b_init")},
    ),
    "MultiHeadAttention": _layer(
        "hk.MultiHeadAttention",
        "MultiHeadAttention helper",
        "num_heads key_size with_bias",
        {
            "value_size": "({r}.value_size or {r}.key_size)",
            "model_size": "({r}.model_size or {r}.key_size * {r}.num_heads)",
        },
        {"w_init": _init("w_init"), "b_init": _init("b_init")},
    ),
    "BatchNorm": _layer(
        "hk.BatchNorm",
        "BatchNorm helper",
        "create_scale create_offset eps axis cross_replica_axis cross_replica_axis_index_groups",
        todo={
            "scale_init": "Haiku keeps scale_init or jnp.ones; the emitted BatchNorm keeps the Flax initializer as passed (None for ones)",
            "offset_init": "Haiku keeps offset_init or jnp.zeros; the emitted BatchNorm keeps the Flax initializer as passed (None for zeros)",
            "channel_index": "Haiku's channel axis for data_format: write get_channel_index({r}.data_format)",
            "mean_ema": "Haiku's ExponentialMovingAverage submodule; the emitted BatchNorm builds it when called: read {r}.variables['batch_stats']['mean_ema']",
            "var_ema": "Haiku's ExponentialMovingAverage submodule; the emitted BatchNorm builds it when called: read {r}.variables['batch_stats']['var_ema']",
        },
    ),
    **{
        f"DepthwiseConv{n}D": _layer(
            f"hk.DepthwiseConv{n}D",
            f"DepthwiseConv{n}D helper",
            "channel_multiplier padding with_bias data_format",
            todo={
                "kernel_shape": _normalised("kernel_shape to a per-dimension tuple", "kernel_shape"),
                "stride": _normalised("stride to a per-dimension tuple", "stride"),
                "rhs_dilation": _normalised("rate to a per-dimension tuple", "rate"),
                "lhs_dilation": _CONV_TODO["lhs_dilation"],
                "num_spatial_dims": f"{n} for hk.DepthwiseConv{n}D: write {n}",
                "channel_index": "Haiku's channel axis for data_format: write get_channel_index({r}.data_format)",
                "dn": "Haiku's lax dimension numbers; build them with jax.lax.conv_dimension_numbers",
                "w_init": _init("w_init"),
                "b_init": _init("b_init"),
            },
        )
        for n in (1, 2, 3)
    },
    "Bias": _layer(
        "hk.Bias",
        "Bias helper",
        "output_size bias_dims",
        todo={"b_init": _init("bias_init"), "bias_shape": _CALL_TIME, "input_size": _CALL_TIME},
    ),
    "ExponentialMovingAverage": _layer(
        "hk.ExponentialMovingAverage",
        "ExponentialMovingAverage helper",
        "decay zero_debias warmup_length initialize average",
    ),
}


# -- when has a layer certainly been called? -----------------------------------

#: Subexpressions that may run later, never, or more than once: a call inside proves nothing.
_MAYBE_RUN = (cst.Lambda, cst.IfExp, cst.BooleanOperation, cst.ListComp, cst.SetComp, cst.DictComp, cst.GeneratorExp)


_CLAUSES = (cst.If, cst.Else, cst.ExceptHandler, cst.ExceptStarHandler, cst.Finally, cst.MatchCase)


def _events(node: cst.CSTNode, certain: bool = True) -> Iterator[tuple[str, cst.CSTNode, bool]]:
    """``("call", call, certain)`` after a call has run and ``("read", attribute, _)`` for each
    attribute read, in Python's evaluation order for one statement's expressions.

    Source order is evaluation order except in an assignment, whose value runs
    before its targets; conditional or deferred subexpressions (:data:`_MAYBE_RUN`)
    and chained comparisons yield calls that are not certain.
    """
    if isinstance(node, (cst.FunctionDef, cst.ClassDef, cst.BaseSuite)):
        return  # statement bodies are walked by _block
    maybe = isinstance(node, _MAYBE_RUN) or (isinstance(node, cst.Comparison) and len(node.comparisons) > 1)
    if isinstance(node, cst.Attribute):
        yield "read", node, certain
    # An elif, else, except or finally clause runs only on some paths: walked by _block.
    children = [c for c in node.children if not isinstance(c, _CLAUSES)]
    if isinstance(node, cst.Assign):
        children = [node.value, *node.targets]
    for child in children:
        yield from _events(child, certain and not maybe)
    if isinstance(node, cst.Call):
        yield "call", node, certain


def reads_after_calls(function: cst.FunctionDef) -> set[int]:
    """Ids of ``<receiver>.input_size`` reads in ``function`` run after ``<receiver>(...)`` certainly ran."""
    found: set[int] = set()
    _block(function.body, frozenset(), found)
    return found


def _block(body: cst.BaseSuite | cst.CSTNode, called: frozenset[str], found: set[int]) -> frozenset[str]:
    """Walks one block's statements in order; returns the receivers certainly called by its end."""
    statements = body.body if isinstance(body, (cst.IndentedBlock, cst.SimpleStatementSuite)) else [body]
    for statement in statements:
        called = _statement(statement, called, found)
    return called


def _statement(statement: cst.CSTNode, called: frozenset[str], found: set[int]) -> frozenset[str]:
    if isinstance(statement, (cst.FunctionDef, cst.ClassDef)):
        return called  # its body runs at an unknown time: walked (with nothing called) as a function of its own
    current = set(called)
    for kind, node, certain in _events(statement):
        if kind == "call" and certain:
            current.add(code(node.func))  # type: ignore[attr-defined]
        elif kind == "read" and node.attr.value == "input_size" and code(node.value) in current:  # type: ignore[attr-defined]
            found.add(id(node))
    for body in _blocks(statement):
        _block(body, frozenset(current), found)  # may not run (or run again): nothing it calls carries on
    return frozenset(current)


def _blocks(statement: cst.CSTNode) -> Iterator[cst.BaseSuite]:
    """The statement blocks directly inside a compound statement (bodies, else, except, finally)."""
    for child in statement.children:
        if isinstance(child, cst.BaseSuite):
            yield child
        elif isinstance(child, _CLAUSES):
            yield from _blocks(child)


# -- which names are layers -----------------------------------------------------

_SELF_ATTR = m.Attribute(m.Name("self"), m.Name())


def _targets(node: cst.CSTNode) -> list[cst.BaseExpression]:
    """Expressions a statement or clause binds (assignment and loop targets, ``as`` names, ``del``)."""
    if isinstance(node, cst.Assign):
        return [t.target for t in node.targets]
    if isinstance(node, (cst.AugAssign, cst.AnnAssign, cst.For, cst.CompFor, cst.NamedExpr, cst.Del)):
        return [node.target]
    if isinstance(node, cst.AsName):
        return [node.name]
    return []


def _bound_names(target: cst.BaseExpression) -> Iterator[cst.BaseExpression]:
    """The names and ``self.x`` attributes a target binds (through tuples, lists and stars)."""
    if isinstance(target, (cst.Tuple, cst.List)):
        for element in target.elements:
            yield from _bound_names(element.value)
    elif isinstance(target, cst.StarredElement):
        yield from _bound_names(target.value)
    elif isinstance(target, (cst.Name, cst.Attribute)):
        yield target


@dataclass(frozen=True)
class Bound:
    """A name or ``self.x`` bound once to a layer (or, ``collection``, to a list or tuple of them).

    ``calls`` are the constructions of ``layer``. ``certain`` is False for a
    Linen layer in a file that also builds its own Linen layers: it may not be
    one flaxify built from a Haiku layer.
    """

    layer: Layer
    calls: tuple[cst.Call, ...]
    certain: bool = True
    collection: bool = False

    def template(self, attribute: str) -> str | None:
        """The rewrite of ``attribute`` (None: a TODO), honouring ``tuple_only``."""
        template = self.layer.attributes[attribute]
        keyword, position = self.layer.tuple_only.get(attribute, ("", -1))
        if keyword and not all(isinstance(_argument(call, keyword, position), cst.Tuple) for call in self.calls):
            return None
        return template

    def item(self) -> Bound:
        return replace(self, collection=False)


class ModuleAttributesCommand(FlaxifyCommand):
    """Haiku layer attribute reads -> the Linen layer's field, or a TODO saying what to write."""

    DESCRIPTION = "Rewrites reads of a Haiku layer's attributes to the Linen layer's fields, or marks them TODO."

    @classmethod
    def wanted(cls, source: bytes, state: MigrationState) -> bool:
        return _ANY_ATTRIBUTE.search(source) is not None

    def __init__(self, context: CodemodContext) -> None:
        super().__init__(context)
        self._kinds: dict[str, tuple[Layer, bool]] = {}
        self._user_modules: set[str] = set()
        self._module_defs: dict[str, cst.ClassDef] = {}
        # Bindings are collected on the first read that needs them (most files read no Haiku attribute).
        self._classes: list[cst.ClassDef] = []
        self._cache: dict[int, dict[str, Bound]] = {}
        self._after_call: dict[int, set[int]] = {}  # function -> its input_size reads run after the call
        # Function scopes, and comprehension scopes inside them (True: names they do not bind are the function's).
        self._local_layers: list[tuple[bool, cst.FunctionDef | dict[str, Bound | None]]] = []
        self._written: set[int] = set()  # attributes that are assignment or del targets

    # -- scopes -------------------------------------------------------------
    def visit_Module(self, node: cst.Module) -> None:
        # Imports are tidied after every pass: a flax.linen import standing now is the user's own,
        # and then an nn.Dense of the file is not provably one flaxify built from a Haiku layer.
        certain = not any(name == "flax.linen" for name in import_table(node).values())
        self._kinds = {f"{self.state.nn}.{name}": (layer, certain) for name, layer in LINEN.items()}
        # An emitted helper is named as its class (LSTM, MLP; ConvLSTM for hk.Conv2DLSTM), unless the file has its own.
        emitted = {found[0] for q in self.state.helper_classes if (found := helper_class(q)) is not None}
        helpers = emitted - self.state.user_names
        self._kinds.update({name: (layer, True) for name, layer in HELPERS.items() if name in helpers})
        self._user_modules = {
            stmt.name.value
            for stmt in node.body
            if isinstance(stmt, cst.ClassDef)
            and stmt.name.value in {*self.state.module_classes, *self.state.wrapper_classes}
            and not _defines_any(stmt, USER_MODULE.attributes)
        }
        self._kinds.update({name: (USER_MODULE, True) for name in self._user_modules})
        self._module_defs = {s.name.value: s for s in node.body if isinstance(s, cst.ClassDef) and s.name.value in self._user_modules}

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        self._classes.append(node)

    def leave_ClassDef(self, original_node: cst.ClassDef, updated_node: cst.ClassDef) -> cst.ClassDef:
        self._classes.pop()
        return updated_node

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self._local_layers.append((False, node))

    def leave_FunctionDef(self, original_node: cst.FunctionDef, updated_node: cst.FunctionDef) -> cst.FunctionDef:
        self._local_layers.pop()
        return updated_node

    def visit_ListComp(self, node: cst.ListComp) -> None:
        self._enter_comprehension(node)

    def visit_SetComp(self, node: cst.SetComp) -> None:
        self._enter_comprehension(node)

    def visit_DictComp(self, node: cst.DictComp) -> None:
        self._enter_comprehension(node)

    def visit_GeneratorExp(self, node: cst.GeneratorExp) -> None:
        self._enter_comprehension(node)

    def leave_ListComp(self, original_node: cst.ListComp, updated_node: cst.ListComp) -> cst.BaseExpression:
        return self._leave_comprehension(updated_node)

    def leave_SetComp(self, original_node: cst.SetComp, updated_node: cst.SetComp) -> cst.BaseExpression:
        return self._leave_comprehension(updated_node)

    def leave_DictComp(self, original_node: cst.DictComp, updated_node: cst.DictComp) -> cst.BaseExpression:
        return self._leave_comprehension(updated_node)

    def leave_GeneratorExp(self, original_node: cst.GeneratorExp, updated_node: cst.GeneratorExp) -> cst.BaseExpression:
        return self._leave_comprehension(updated_node)

    def visit_Lambda(self, node: cst.Lambda) -> None:
        # Its parameters shadow the function's names (and are no layers flaxify knows of).
        self._local_layers.append((True, {param.name.value: None for param in walk(node.params) if isinstance(param, cst.Param)}))

    def leave_Lambda(self, original_node: cst.Lambda, updated_node: cst.Lambda) -> cst.BaseExpression:
        return self._leave_comprehension(updated_node)

    def _enter_comprehension(self, node: cst.BaseComp | cst.DictComp) -> None:
        """A comprehension's ``for`` targets are its own names (Python 3 scopes them to it)."""
        names: dict[str, Bound | None] = {}
        clause: cst.CompFor | None = node.for_in
        while clause is not None:
            loop = self._loop_item(clause)
            for target in _bound_names(clause.target):
                if isinstance(target, cst.Name):
                    names[target.value] = None if target.value in names or loop is None or target is not loop[0] else loop[1]
            clause = clause.inner_for_in
        self._local_layers.append((True, names))

    def _leave_comprehension(self, node: cst.BaseExpression) -> cst.BaseExpression:
        self._local_layers.pop()
        return node

    def _local(self, name: str) -> Bound | None:
        """The layer a local name is, looked up from the innermost comprehension to its function."""
        for comprehension, names in reversed(self._local_layers):
            if not comprehension:
                return self._function_layers(names).get(name)  # type: ignore[arg-type]
            if name in names:
                return names[name]  # type: ignore[index]
        return None

    def _in_own_method(self) -> bool:
        """Directly in a method of one of the file's converted module classes (``self`` is that module)."""
        function = next((f for comprehension, f in reversed(self._local_layers) if not comprehension), None)
        if not self._classes or self._classes[-1].name.value not in self._user_modules:
            return False
        return any(statement is function for statement in self._classes[-1].body.body)

    def _class_layers(self) -> dict[str, Bound]:
        """The innermost class's ``self.x`` layers and collections."""
        return self._layers_of(self._classes[-1]) if self._classes else {}

    def _layers_of(self, klass: cst.ClassDef) -> dict[str, Bound]:
        """``klass``'s ``self.x`` layers and collections."""
        if id(klass) not in self._cache:
            found = self._bound(walk(klass), _self_attribute, local=False)
            changed = _changed_attributes(walk(klass))  # a collection changed after it was built may hold anything
            self._cache[id(klass)] = {name: b for name, b in found.items() if not (b.collection and name in changed)}
        return self._cache[id(klass)]

    def _function_layers(self, function: cst.FunctionDef) -> dict[str, Bound]:
        if id(function) not in self._cache:
            self._cache[id(function)] = self._bound(_own_nodes(function), _local_name, local=True)
        return self._cache[id(function)]

    def _runs_after_call(self, read: cst.Attribute) -> bool:
        """``read`` (an ``input_size`` read) runs after its layer's call certainly ran, in the innermost function."""
        function = next((f for comprehension, f in reversed(self._local_layers) if not comprehension), None)
        if not isinstance(function, cst.FunctionDef):
            return False
        if id(function) not in self._after_call:
            self._after_call[id(function)] = reads_after_calls(function)
        return id(read) in self._after_call[id(function)]

    def _bound(self, nodes: Iterator[cst.CSTNode], key: Callable[[cst.CSTNode], str | None], local: bool) -> dict[str, Bound]:
        """The keys (``self.x`` attributes or local names) bound exactly once, to a layer or a collection of them.

        A local bound by a loop or comprehension over a collection of layers
        (``for layer in self.layers``, ``reversed(...)``, ``enumerate(...)``) is one of its layers.
        """
        values: dict[str, list[Bound | None]] = {}
        for node in nodes:
            if isinstance(node, cst.CompFor):
                continue  # its targets belong to the comprehension's scope
            single = isinstance(node, cst.Assign) and len(node.targets) == 1
            loop = self._loop_item(node) if local else None
            for target in (t for raw in _targets(node) for t in _bound_names(raw)):
                name = key(target)
                if name is None:
                    continue
                if loop is not None and target is loop[0]:
                    values.setdefault(name, []).append(loop[1])
                else:
                    values.setdefault(name, []).append(self._built(node.value) if single else None)  # type: ignore[attr-defined]
            for name in _declared(node) if local else ():  # parameters, nested defs, global names, imports
                values.setdefault(name, []).append(None)
        return {name: bound[0] for name, bound in values.items() if len(bound) == 1 and bound[0] is not None}

    def _built(self, value: cst.BaseExpression) -> Bound | None:
        """The layer, or collection of layers of one kind, that ``value`` constructs."""
        if isinstance(value, cst.Call) and isinstance(value.func, cst.Name) and value.func.value in ("tuple", "list"):
            inner = self._built(value.args[0].value) if len(value.args) == 1 and not value.args[0].star else None
            return inner if inner is not None and inner.collection else None
        if isinstance(value, (cst.List, cst.Tuple)):
            items = [self._built(e.value) if not isinstance(e, cst.StarredElement) else None for e in value.elements]
            if not items or any(i is None or i.collection or i.layer is not items[0].layer for i in items):  # type: ignore[union-attr]
                return None
            calls = tuple(c for i in items for c in i.calls)  # type: ignore[union-attr]
            return replace(items[0], calls=calls, collection=True)  # type: ignore[arg-type]
        if isinstance(value, (cst.ListComp, cst.GeneratorExp)):
            item = self._built(value.elt)  # type: ignore[arg-type]
            return replace(item, collection=True) if item is not None and not item.collection else None
        kind = self._kinds.get(code(value.func)) if isinstance(value, cst.Call) else None
        return Bound(kind[0], (value,), certain=kind[1]) if kind is not None else None  # type: ignore[arg-type]

    def _loop_item(self, node: cst.CSTNode) -> tuple[cst.BaseExpression, Bound] | None:
        """``(target name, layer)`` for ``for name in <collection>`` / ``for i, name in enumerate(<collection>)``."""
        if not isinstance(node, (cst.For, cst.CompFor)):
            return None
        target, iterable = node.target, node.iter
        if _builtin(iterable, "enumerate") and m.matches(target, m.Tuple([m.Element(m.Name()), m.Element(m.Name())])):
            target, iterable = target.elements[1].value, iterable.args[0].value  # type: ignore[attr-defined]
        collection = self._collection(iterable)
        return (target, collection.item()) if collection is not None and isinstance(target, cst.Name) else None

    def _collection(self, node: cst.BaseExpression) -> Bound | None:
        """A class collection of layers: ``self.x``, ``reversed(...)``, ``tuple(...)``, ``list(...)`` or a slice of one."""
        if any(_builtin(node, name) for name in ("reversed", "tuple", "list")):
            return self._collection(node.args[0].value)  # type: ignore[attr-defined]
        if isinstance(node, cst.Subscript) and all(isinstance(e.slice, cst.Slice) for e in node.slice):
            return self._collection(node.value)
        bound = self._class_layers().get(node.attr.value) if m.matches(node, _SELF_ATTR) else None  # type: ignore[attr-defined]
        return bound if bound is not None and bound.collection else None

    # -- reads --------------------------------------------------------------
    def visit_Assign(self, node: cst.Assign) -> None:
        self._note_written([t.target for t in node.targets])

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        self._note_written([node.target])

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        self._note_written([node.target])

    def visit_Del(self, node: cst.Del) -> None:
        self._note_written([node.target])

    def _note_written(self, targets: list[cst.BaseExpression]) -> None:
        self._written.update(id(t) for raw in targets for t in _bound_names(raw))

    def leave_Attribute(self, original_node: cst.Attribute, updated_node: cst.Attribute) -> cst.BaseExpression:
        attribute = original_node.attr.value
        if attribute not in _ALL_ATTRIBUTES:
            return updated_node
        bound = self._receiver(original_node.value)
        if bound is None or attribute not in bound.layer.attributes:
            return updated_node
        if not bound.certain and attribute in bound.layer.linen_fields:
            return updated_node  # may be the user's own Linen layer reading its own field
        receiver = code(original_node.value)
        construct = f"{bound.layer.haiku}.{attribute}"
        if id(original_node) in self._written:
            self.todo(construct, "Haiku lets a layer's attributes be set; Linen layers are frozen: pass the value to the constructor")
            return updated_node
        template = bound.template(attribute)
        if template == _READ_BACK:
            if not self._runs_after_call(original_node):
                self.todo(construct, _input_size_reason(receiver))
                return updated_node
            template = _KERNEL_SIZE
        if template is None:
            self.todo(construct, bound.layer.reasons[attribute].replace("{r}", receiver))
            return updated_node
        if template == "{r}." + attribute:
            return updated_node  # same name, same value
        expression = cst.parse_expression(template.replace("{r}", receiver))
        if not bound.certain:
            self.todo(construct, _uncertain_reason(receiver, bound.layer.haiku, code(expression)))
            return updated_node
        return expression if expression.lpar else expression.with_changes(lpar=updated_node.lpar, rpar=updated_node.rpar)

    def _receiver(self, node: cst.BaseExpression) -> Bound | None:
        """The layer ``node`` is: ``self.x``, a local, an item ``self.x[i]`` of a collection (``i`` free of
        calls), or ``<module>.x`` for a module of one of the file's classes and a layer ``x`` it built."""
        if m.matches(node, _SELF_ATTR):
            bound = self._class_layers().get(node.attr.value)  # type: ignore[attr-defined]
        elif m.matches(node, m.Name("self")) and self._in_own_method():
            bound = Bound(USER_MODULE, ())
        elif isinstance(node, cst.Name) and self._local_layers:
            bound = self._local(node.value)
        elif isinstance(node, cst.Subscript) and _is_index(node):
            collection = self._collection(node.value)
            bound = collection.item() if collection is not None and m.matches(node.value, _SELF_ATTR) else None
        elif isinstance(node, cst.Attribute):  # a layer of one of the file's modules: self.encoder.proj, net.proj
            owner = self._receiver(node.value)
            klass = self._module_defs.get(_built_class(owner)) if owner is not None else None
            bound = self._layers_of(klass).get(node.attr.value) if klass is not None else None
        else:
            bound = None
        return None if bound is None or bound.collection else bound


def _built_class(bound: Bound) -> str:
    """The class name of the file's own module ``bound`` was constructed as (``Block(...)``), else ``""``."""
    if bound.layer is not USER_MODULE or len(bound.calls) != 1 or bound.collection:
        return ""
    func = bound.calls[0].func
    return func.value if isinstance(func, cst.Name) else ""


def _defines_any(klass: cst.ClassDef, names: Iterable[str]) -> bool:
    """The class defines one of ``names`` itself (a method, or ``self.<name> = ...``)."""
    wanted = set(names)
    for node in walk(klass):
        if isinstance(node, cst.FunctionDef) and node.name.value in wanted:
            return True
        if any(_self_attribute(t) in wanted for raw in _targets(node) for t in _bound_names(raw)):
            return True
    return False


def _builtin(node: cst.CSTNode, name: str) -> bool:
    """``name(<one positional argument>)``."""
    return (
        isinstance(node, cst.Call)
        and m.matches(node.func, m.Name(name))
        and len(node.args) == 1
        and node.args[0].keyword is None
        and not node.args[0].star
    )


def _is_index(node: cst.Subscript) -> bool:
    """``x[i]`` with one index free of calls (cheap to evaluate twice), not a slice."""
    if len(node.slice) != 1 or not isinstance(node.slice[0].slice, cst.Index):
        return False
    return not any(isinstance(n, cst.Call) for n in walk(node.slice[0].slice))


#: Methods that change a list in place.
_MUTATORS = frozenset({"append", "extend", "insert", "pop", "remove", "clear", "sort", "reverse"})


def _changed_attributes(nodes: Iterator[cst.CSTNode]) -> set[str]:
    """``x`` for every ``self.x`` changed in place: ``self.x.append(...)``, ``self.x[i] = ...``, ``del self.x[i]``."""
    changed: set[str] = set()
    for node in nodes:
        if isinstance(node, cst.Attribute) and node.attr.value in _MUTATORS and m.matches(node.value, _SELF_ATTR):
            changed.add(node.value.attr.value)  # type: ignore[attr-defined]
        for target in _targets(node) if isinstance(node, (cst.Assign, cst.AugAssign, cst.Del)) else ():
            for item in walk(target):
                if isinstance(item, cst.Subscript) and m.matches(item.value, _SELF_ATTR):
                    changed.add(item.value.attr.value)  # type: ignore[attr-defined]
    return changed


def _argument(call: cst.Call, keyword: str, position: int) -> cst.BaseExpression | None:
    """The argument given as ``keyword=`` or at ``position`` (no star arguments before it)."""
    for index, arg in enumerate(call.args):
        if arg.star:
            return None
        if (arg.keyword is None and index == position) or (arg.keyword is not None and arg.keyword.value == keyword):
            return arg.value
    return None


def _uncertain_reason(receiver: str, haiku: str, rewrite: str) -> str:
    return (
        f"this file builds flax.linen layers of its own, so flaxify cannot prove {receiver} is the layer it built "
        f"from an {haiku}, which has no such attribute in Linen; if it is, write `{rewrite}`"
    )


def _input_size_reason(receiver: str) -> str:
    return (
        f"Haiku records input_size when {receiver} is called (None before); nn.Dense records nothing, and its kernel "
        "(shape (input_size, features)) exists from the start of apply, so flaxify reads the size back only after a "
        f"call that certainly ran earlier in this method: call {receiver} first and read "
        f'{receiver}.get_variable("params", "kernel").shape[0], or use the last axis of its input'
    )


def _self_attribute(target: cst.CSTNode) -> str | None:
    return target.attr.value if m.matches(target, _SELF_ATTR) else None  # type: ignore[attr-defined]


def _local_name(target: cst.CSTNode) -> str | None:
    return target.value if isinstance(target, cst.Name) else None


def _declared(node: cst.CSTNode) -> list[str]:
    """Names bound other than by assignment: parameters, nested defs and classes, global/nonlocal."""
    if isinstance(node, (cst.Param, cst.FunctionDef, cst.ClassDef)):
        return [node.name.value]
    if isinstance(node, (cst.Global, cst.Nonlocal)):
        return [n.name.value for n in node.names]
    if isinstance(node, (cst.Import, cst.ImportFrom)) and not isinstance(node.names, cst.ImportStar):
        return [a.evaluated_alias or code(a.name).split(".")[0] for a in node.names]
    return []


def _own_nodes(function: cst.FunctionDef) -> Iterator[cst.CSTNode]:
    """The function's parameters and body; a nested def, class or lambda is one node (its own scope)."""
    yield from walk(function.params)
    stack: list[cst.CSTNode] = [function.body]
    while stack:
        node = stack.pop()
        yield node
        if not isinstance(node, (cst.FunctionDef, cst.ClassDef, cst.Lambda)):
            stack.extend(node.children)


_ALL_ATTRIBUTES = frozenset(a for layer in (*LINEN.values(), *HELPERS.values()) for a in layer.attributes)
_ANY_ATTRIBUTE = re.compile(rb"\.(?:" + b"|".join(sorted(a.encode() for a in _ALL_ATTRIBUTES)) + rb")\b")
