"""A keyword dict ``__init__`` builds for one layer is translated key by key.

Haiku code often lets callers configure a layer through a dict of keyword
arguments and fills in defaults with ``setdefault`` (``hk.nets.ResNet``)::

    initial_conv_config = dict(initial_conv_config or {})
    initial_conv_config.setdefault("output_channels", 64)
    initial_conv_config.setdefault("kernel_shape", 7)
    initial_conv_config.setdefault("with_bias", False)
    initial_conv_config.setdefault("name", "initial_conv")
    self.initial_conv = hk.Conv2D(**initial_conv_config)

The keys flaxify can see are translated with the layer's own table-driven
rewrite, and the dict holds the Flax layer's keyword arguments from then on::

    initial_conv_config = dict(self.initial_conv_config or {})
    # initial_conv_config holds nn.Conv keyword arguments (hk.Conv2D's, translated).
    initial_conv_config.setdefault("features", 64)
    initial_conv_config.setdefault("kernel_size", (7, 7))
    initial_conv_config.setdefault("use_bias", False)
    initial_conv_config.setdefault("kernel_init", nn.initializers.variance_scaling(...))
    initial_conv_config.setdefault("name", "initial_conv")
    self.initial_conv = nn.Conv(**initial_conv_config)

Haiku's defaults that Flax does not share (``kernel_init`` above) become
``setdefault`` lines too, so a caller's entry still wins, as in Haiku. What a
caller passes must now be Flax keywords: a Haiku-only name (``w_init``,
``output_channels``) fails loudly with nn.Conv's ``unexpected keyword
argument``; the names both share (``padding``, ``mask``,
``feature_group_count``, ``name``) mean the same in both. Only a dict built by
``dict(...)`` and ``setdefault`` statements, read nowhere but in the one
``**`` of one ``hk.Linear`` / ``hk.Conv*D`` construction, is translated.
"""

from __future__ import annotations

from dataclasses import dataclass

import libcst as cst
import libcst.matchers as m

from flaxify.migrate.layers_common import code, literal, walk

#: Haiku layers whose keyword dicts are translated.
LAYERS = frozenset({"Linear", "Conv1D", "Conv2D", "Conv3D", "ConvND"})
#: Flax keyword -> the Haiku argument it comes from, per Flax layer.
_ORIGINS = {
    "Dense": {"features": "output_size", "use_bias": "with_bias", "kernel_init": "w_init", "bias_init": "b_init", "name": "name"},
    "Conv": {
        "features": "output_channels", "kernel_size": "kernel_shape", "strides": "stride", "kernel_dilation": "rate",
        "padding": "padding", "use_bias": "with_bias", "kernel_init": "w_init", "bias_init": "b_init",
        "mask": "mask", "feature_group_count": "feature_group_count", "name": "name",
    },
}  # fmt: skip
_POSITIONAL = {"Dense": ("features",), "Conv": ("features", "kernel_size")}


@dataclass(frozen=True)
class LayerConfig:
    """``name = dict(...)`` plus ``name.setdefault(key, value)`` lines, spread into one layer."""

    name: str
    defaults: tuple[tuple[str, cst.BaseExpression], ...]  # the setdefault keys and values, in order


def find_layer_configs(body: list[cst.BaseStatement], spreads: dict[str, cst.Call]) -> dict[int, LayerConfig]:
    """``{id(construction): LayerConfig}`` for the dicts of ``body`` that qualify.

    ``spreads`` maps a dict name to the one supported layer construction that
    takes ``**name`` (the caller resolves which calls are Haiku layers).
    """
    found: dict[int, LayerConfig] = {}
    for index, statement in enumerate(body):
        name = _dict_copy(statement)
        if name is None or name not in spreads:
            continue
        later = body[index + 1 :]
        defaults = [d for d in (_setdefault(s, name) for s in later) if d is not None]
        uses = sum(1 for s in later for n in _names(s) if n == name)
        rebound = any(_binds(s, name) for s in later)
        if uses == len(defaults) + 1 and not rebound and all(isinstance(k, str) for k, _ in defaults):
            found[id(spreads[name])] = LayerConfig(name, tuple(defaults))  # type: ignore[arg-type]
    return found


def spread_name(call: cst.Call) -> str | None:
    """``x`` when the call's only ``*``/``**`` argument is ``**x``."""
    stars = [a for a in call.args if a.star]
    if len(stars) == 1 and stars[0].star == "**" and isinstance(stars[0].value, cst.Name):
        return stars[0].value.value
    return None


def literal_name(config: LayerConfig) -> str | None:
    """The ``name`` default, when it is a string literal (the layer's Haiku name)."""
    value = dict(config.defaults).get("name")
    return value.evaluated_value if isinstance(value, cst.SimpleString) else None  # type: ignore[return-value]


def synthetic_call(call: cst.Call, config: LayerConfig) -> cst.Call | str:
    """The construction with ``**name`` replaced by the known keys; a reason when that is not exact."""
    explicit = {a.keyword.value for a in call.args if a.keyword is not None}
    args = [a for a in call.args if not a.star]
    for key, value in config.defaults:
        if key in explicit:
            return f"`{key}` is both passed and in `{config.name}`"
        if key == "padding" and not isinstance(literal(value), (str, tuple, list)):
            return f"`{config.name}['padding']` is not a literal; its Flax pairs depend on the other keys"
        args.append(cst.Arg(value, keyword=cst.Name(key), equal=_EQUAL))
    if args:
        args[-1] = args[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
    return call.with_changes(args=args)


def split_flax_call(flax: cst.BaseExpression, explicit: set[str], config: LayerConfig) -> tuple[cst.Call, list[tuple[str, str]]] | str:
    """The Flax construction with ``**name`` and the ``setdefault`` pairs; a reason when it cannot split.

    An argument that comes from one the Haiku call passed itself stays in the
    call; the others (from the dict's keys or from Haiku's defaults) become
    ``setdefault`` lines, so a caller's dict entry still wins.
    """
    layer = flax.func.attr.value if m.matches(flax, m.Call(func=m.Attribute())) else None  # type: ignore[attr-defined]
    if layer not in _ORIGINS:
        return f"the Flax layer is not one whose keywords flaxify knows ({code(flax)})"
    assert isinstance(flax, cst.Call)
    kept: list[cst.Arg] = []
    defaults: list[tuple[str, str]] = []
    for index, arg in enumerate(flax.args):
        keyword = arg.keyword.value if arg.keyword is not None else _POSITIONAL[layer][index]
        origin = _ORIGINS[layer].get(keyword)
        if origin is None:
            return f"nn.{layer}({keyword}=...) has no Haiku argument flaxify knows"
        if origin in explicit:
            positional = arg.keyword is None and all(a.keyword is None for a in kept) and len(kept) == index
            kept.append(arg if positional else arg.with_changes(keyword=cst.Name(keyword), equal=_EQUAL))
        else:
            defaults.append((keyword, code(arg.value)))
    spread = cst.Arg(cst.Name(config.name), star="**")
    kept = [a.with_changes(comma=cst.MaybeSentinel.DEFAULT) for a in kept]
    return flax.with_changes(args=[*kept, spread]), defaults


def setdefault_lines(config: LayerConfig, pairs: list[tuple[str, str]], layer: str, haiku: str) -> list[cst.SimpleStatementLine]:
    """``name.setdefault("key", value)`` lines, the first saying what the dict now holds."""
    lines = [cst.parse_statement(f'{config.name}.setdefault("{key}", {value})\n') for key, value in pairs]
    note = cst.EmptyLine(comment=cst.Comment(f"# {config.name} holds {layer} keyword arguments ({haiku}'s, translated)."))
    if not lines:
        return []
    lines[0] = lines[0].with_changes(leading_lines=[note])
    return lines  # type: ignore[return-value]


def regroup(
    statements: list[cst.BaseStatement], name: str, lines: list[cst.SimpleStatementLine]
) -> tuple[list[cst.BaseStatement], list[tuple[int, bool]]]:
    """Drops ``name``'s old setdefault lines and puts ``lines`` after the last of them (or after ``name = dict(...)``).

    Returns the new statements and, for each, ``(index, new)``: the old
    statement it is, or for a new line the old statement it follows.
    """
    olds = [i for i, s in enumerate(statements) if _setdefault(s, name) is not None]
    anchor = max(olds, default=next((i for i, s in enumerate(statements) if _dict_copy(s) == name), None))
    out: list[cst.BaseStatement] = []
    origin: list[tuple[int, bool]] = []
    for index, statement in enumerate(statements):
        if index not in olds:
            out.append(statement)
            origin.append((index, False))
        if index == anchor:
            if index in olds and statement.leading_lines and lines:  # keep the blank line / comment above
                lines = [lines[0].with_changes(leading_lines=[*statement.leading_lines, *lines[0].leading_lines]), *lines[1:]]
            out.extend(lines)
            origin.extend([(index, True)] * len(lines))
    return out, origin


def _dict_copy(statement: cst.BaseStatement) -> str | None:
    """``name = dict(x)`` -> ``name``."""
    pattern = m.SimpleStatementLine(
        [m.Assign(targets=[m.AssignTarget(m.Name())], value=m.Call(func=m.Name("dict"), args=[m.Arg(keyword=None, star="")]))]
    )
    if not m.matches(statement, pattern):
        return None
    return statement.body[0].targets[0].target.value  # type: ignore[attr-defined,no-any-return]


def _setdefault(statement: cst.BaseStatement, name: str) -> tuple[object, cst.BaseExpression] | None:
    """``name.setdefault("key", value)`` as a whole statement -> ``("key", value)``."""
    call = m.Call(func=m.Attribute(m.Name(name), m.Name("setdefault")), args=[m.Arg(keyword=None), m.Arg(keyword=None)])
    if not m.matches(statement, m.SimpleStatementLine([m.Expr(call)])):
        return None
    args = statement.body[0].value.args  # type: ignore[attr-defined]
    key = args[0].value.evaluated_value if isinstance(args[0].value, cst.SimpleString) else None
    return key, args[1].value


def _names(node: cst.CSTNode) -> list[str]:
    nodes = list(walk(node))
    skip = {id(n.attr) for n in nodes if isinstance(n, cst.Attribute)}
    skip |= {id(n.keyword) for n in nodes if isinstance(n, cst.Arg) and n.keyword is not None}
    return [n.value for n in nodes if isinstance(n, cst.Name) and id(n) not in skip]


def _binds(statement: cst.BaseStatement, name: str) -> bool:
    binders = (cst.AssignTarget, cst.AugAssign, cst.AnnAssign, cst.For, cst.CompFor, cst.NamedExpr)
    return any(isinstance(node, binders) and name in _names(node.target) for node in walk(statement))


_EQUAL = cst.AssignEqual(whitespace_before=cst.SimpleWhitespace(""), whitespace_after=cst.SimpleWhitespace(""))
