"""Small helpers shared by the table-driven layer, initializer and pooling rewrites.

Every rewrite follows the same three steps: bind the Haiku call's arguments to the
Haiku signature (:func:`bind`), decide each Flax argument from them (reading
literals statically with :func:`literal`), and assemble the Flax call from source
text (:func:`flax_call`). Argument expressions the user wrote are copied verbatim
(:func:`code`); only values that must change (an int kernel size, a ``hk.pad``
function) are recomputed from literals.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import libcst as cst

from flaxify.migrate.rewrite import Unsupported

#: Maps an expression (a name, attribute or call target) to its fully qualified
#: name, e.g. ``hk.initializers.Constant`` -> ``haiku.initializers.Constant``.
Resolver = Callable[[cst.CSTNode], "str | None"]

#: Conventional import aliases, used when no resolver knows a name.
_ALIASES = {"hk": "haiku", "jnp": "jax.numpy", "np": "numpy", "nn": "flax.linen"}

_EMPTY_MODULE = cst.Module(body=[])


def code(node: cst.CSTNode) -> str:
    """The source text of ``node``, exactly as written."""
    return _EMPTY_MODULE.code_for_node(node).strip()


def walk(node: cst.CSTNode) -> Iterator[cst.CSTNode]:
    """``node`` and every node below it (depth first, no metadata, no visitor dispatch)."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(current.children)


def dotted(node: cst.CSTNode) -> str | None:
    """``a.b.c`` for a chain of names and attributes, else ``None``."""
    if isinstance(node, cst.Name):
        return node.value
    if isinstance(node, cst.Attribute):
        base = dotted(node.value)
        return f"{base}.{node.attr.value}" if base else None
    return None


def spelled_qualname(node: cst.CSTNode) -> str | None:
    """A qualified name guessed from spelling and the conventional aliases."""
    name = dotted(node)
    if name is None:
        return None
    head, _, rest = name.partition(".")
    head = _ALIASES.get(head, head)
    return f"{head}.{rest}" if rest else head


def resolve(node: cst.CSTNode, resolver: Resolver | None) -> str | None:
    """The engine's resolver if it knows ``node``, else the spelling-based guess."""
    found = resolver(node) if resolver is not None else None
    return found or spelled_qualname(node)


def haiku_name(qualname: str | None, family: str = "") -> str | None:
    """``"Linear"`` for ``haiku.Linear`` / ``haiku._src.basic.Linear``, else ``None``.

    With ``family="initializers"`` only names under a Haiku ``initializers``
    module match; with ``family="nets"``, only names under ``nets``.
    """
    if not qualname or qualname.split(".")[0] != "haiku":
        return None
    parts = qualname.split(".")
    if family and family not in parts[1:-1]:
        return None
    return parts[-1]


def literal(node: cst.BaseExpression | None) -> object:
    """The Python value of a literal expression, or :data:`UNKNOWN`."""
    if node is None:
        return UNKNOWN
    try:
        return ast.literal_eval(code(node))
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return UNKNOWN


class _Unknown:
    """Marker for an expression whose value is not known statically."""

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN = _Unknown()


@dataclass(frozen=True)
class Signature:
    """A Haiku callable's parameters, in order; ``kwonly`` are keyword-only."""

    display: str  # e.g. "hk.Linear", used in messages
    params: tuple[str, ...]
    kwonly: tuple[str, ...] = ()


Bound = dict[str, cst.BaseExpression]


def bind(call: cst.Call, sig: Signature) -> Bound | Unsupported:
    """Binds ``call``'s arguments to ``sig`` the way Python would."""
    bound: Bound = {}
    positional = [a for a in call.args if a.keyword is None and not a.star]
    keywords = _keywords(call, sig)
    if isinstance(keywords, Unsupported):
        return keywords
    if len(positional) > len(sig.params):
        return Unsupported(f"{sig.display} is called with too many positional arguments")
    for param, arg in zip(sig.params, positional, strict=False):
        bound[param] = arg.value
    for key, value in keywords:
        if key not in sig.params and key not in sig.kwonly:
            return Unsupported(f"{sig.display} has no argument {key!r}")
        if key in bound:
            return Unsupported(f"{sig.display} got argument {key!r} twice")
        bound[key] = value
    return bound


def _keywords(call: cst.Call, sig: Signature) -> list[tuple[str, cst.BaseExpression]] | Unsupported:
    """The keyword arguments, a literal ``**{"key": value}`` spelled out; Unsupported for other stars.

    Haiku's argument names map to Flax's one by one, so they must be known
    here: a dict or sequence built at run time cannot be translated.
    """
    keywords: list[tuple[str, cst.BaseExpression]] = []
    for arg in call.args:
        if arg.star == "**" and isinstance(arg.value, cst.Dict) and all(
            isinstance(e, cst.DictElement) and isinstance(e.key, cst.SimpleString) and e.key.evaluated_value != "name"
            for e in arg.value.elements
        ):  # `name` stays out: the engine names constructions from the written `name=` only
            keywords += [(e.key.evaluated_value, e.value) for e in arg.value.elements]  # type: ignore[union-attr]
        elif arg.star:
            return Unsupported(
                f"{sig.display} gets `{arg.star}{code(arg.value)}`, whose argument names are only known at run time; "
                "flaxify translates Haiku's arguments to Flax's one by one, so pass them by name"
            )
        elif arg.keyword is not None:
            keywords.append((arg.keyword.value, arg.value))
    return keywords


def is_literal(bound: Bound, key: str, default: object) -> bool:
    """True when ``key`` is absent or is the literal ``default``."""
    if key not in bound:
        return True
    value = literal(bound[key])
    return type(value) is type(default) and value == default


def flax_call(func: str, args: Sequence[tuple[str | None, str]]) -> cst.BaseExpression:
    """``func(a, k=b, ...)`` parsed from ``(keyword or None, source)`` pairs."""
    text = ", ".join(v if k is None else f"{k}={v}" for k, v in args)
    return cst.parse_expression(f"{func}({text})")


def name_arg(bound: Bound, name: str | None) -> list[tuple[str | None, str]]:
    """The ``name=`` argument: the Haiku call's own ``name=`` wins over ``name``."""
    if "name" in bound and literal(bound["name"]) is not None:
        return [("name", code(bound["name"]))]
    return [("name", repr(name).replace("'", '"'))] if name is not None else []


def py(value: object) -> str:
    """Source text for a small literal value, with double-quoted strings."""
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, tuple):
        inner = ", ".join(py(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    return repr(value)


def free_name(preferred: str, *nodes: cst.CSTNode | None) -> str:
    """``preferred`` (or ``preferred_``, ...) if no ``Name`` in ``nodes`` spells it.

    Used for lambda parameters, so that a parameter never shadows a name the
    copied user expressions refer to.
    """
    used: set[str] = set()

    class _Names(cst.CSTVisitor):
        def visit_Name(self, node: cst.Name) -> None:
            used.add(node.value)

    for node in nodes:
        if node is not None:
            node.visit(_Names())
    candidate = preferred
    while candidate in used:
        candidate += "_"
    return candidate


def is_simple_ref(node: cst.BaseExpression) -> bool:
    """A name or attribute chain: cheap and side-effect free to evaluate twice."""
    return dotted(node) is not None


@dataclass(frozen=True)
class Ctx:
    """What every layer rewrite needs besides the bound Haiku arguments."""

    name: str | None  # the Flax name= chosen by the engine (a Haiku name= wins)
    nn: str = "nn"
    jnp: str = "jnp"
    resolver: Resolver | None = None
    # Source of Flax constructor arguments taken from the Haiku *call*, e.g.
    # ("precision", "P") for `hk.Linear(3)(x, precision=P)`.
    extra: tuple[tuple[str, str], ...] = ()
