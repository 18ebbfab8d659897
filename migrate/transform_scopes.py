"""Which def an ``hk.transform`` names, and what a ``functools.partial`` over it binds.

``transforms.py`` resolves ``hk.transform(fn)`` to the def ``fn`` means where
the transform stands (a def of the enclosing function, else of the module),
and turns ``hk.transform(functools.partial(fn, kw=value))`` into a class with
a field per bound keyword. The helpers here are the scope and parameter
arithmetic behind that; :func:`partial_problem` is shared with ``project.py``,
whose ``ast`` index must agree with the engine on what is converted.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import libcst as cst

from flaxify.migrate.layers_common import walk

# Attributes of every Linen module: a field of that name would shadow Flax's own.
MODULE_ATTRIBUTES = frozenset(
    {
        "name", "parent", "scope", "variables", "params", "init", "init_with_output", "lazy_init", "apply",
        "setup", "bind", "unbind", "clone", "copy", "path", "param", "variable", "get_variable",
        "put_variable", "has_variable", "make_rng", "has_rng", "sow", "perturb", "tabulate",
        "is_initializing", "is_mutable_collection", "module_paths", "is_initialized",
    }
)  # fmt: skip


def partial_problem(fn: str, bound: Sequence[str | None], parameters: Sequence[str], uses: int) -> str | None:
    """Why ``hk.transform(functools.partial(fn, ...))`` cannot become a class with fields, or None.

    ``bound`` holds each bound argument's keyword (None when positional, ``"*"``
    / ``"**"`` when unpacked), ``parameters`` the names of ``fn``'s parameters a
    keyword can bind, ``uses`` how often the name ``fn`` occurs in its scope,
    its ``def`` included (2: the def and this partial). ``project.py`` asks the
    same question of its ``ast`` so that importing files agree with this one.
    """
    how = "write the nn.Module by hand (fields for the bound values)"
    if any(keyword is None for keyword in bound):
        return f"functools.partial binds positional arguments of {fn}; bind them by keyword, or {how}"
    if any(keyword in ("*", "**") for keyword in bound):
        return f"functools.partial binds unpacked arguments of {fn}; spell them out as keywords, or {how}"
    unknown = [keyword for keyword in bound if keyword not in parameters]
    if unknown:
        return f"functools.partial binds {unknown[0]}, which is not a keyword parameter of {fn}; {how}"
    reserved = [keyword for keyword in bound if keyword in MODULE_ATTRIBUTES]
    if reserved:
        return f"functools.partial binds {reserved[0]}, a name every Linen module already has; rename the parameter"
    if uses != 2:
        return (
            f"{fn} is also used outside this functools.partial; its bound keywords can become fields of a"
            f" class only when the transform is its one use: give the transform its own def, or {how}"
        )
    return None


Owners = tuple[cst.FunctionDef, ...]  # the defs around a statement, outermost first


def statements_with_owners(body: Sequence[cst.CSTNode], owners: Owners) -> Iterator[tuple[Owners, cst.SimpleStatementLine]]:
    """Every simple statement below ``body`` with the defs around it (``()`` at module level)."""
    for node in body:
        if isinstance(node, cst.SimpleStatementLine):
            yield owners, node
            continue
        inner = (*owners, node) if isinstance(node, cst.FunctionDef) else owners
        for child in node.children:
            yield from statements_with_owners([child], inner)


def own_scope(body: cst.BaseSuite) -> Iterator[cst.CSTNode]:
    """Every node of a def's body outside nested defs, classes and lambdas (those nodes themselves included)."""
    stack: list[cst.CSTNode] = list(body.children)
    while stack:
        current = stack.pop()
        yield current
        if not isinstance(current, (cst.FunctionDef, cst.ClassDef, cst.Lambda)):
            stack.extend(current.children)


def binds(owner: cst.FunctionDef, name: str) -> bool:
    """True when ``owner``'s own scope assigns ``name`` (which then shadows a module-level def)."""
    return any(
        isinstance(n, (cst.AssignTarget, cst.AnnAssign, cst.AugAssign, cst.For, cst.WithItem))
        and _spells(getattr(n, "target", None) or getattr(n, "asname", None), name)
        for n in own_scope(owner.body)
    )


def _spells(node: cst.CSTNode | None, name: str) -> bool:
    """True when an assignment target (or ``as`` name) binds ``name``."""
    if isinstance(node, cst.AsName):
        node = node.name
    return node is not None and any(isinstance(n, cst.Name) and n.value == name for n in walk(node))


def count_name(owner: cst.FunctionDef, name: str) -> int:
    """How often ``name`` is spelled in ``owner``'s body, nested scopes included (a nested def's own name too)."""
    return sum(1 for n in walk(owner.body) if isinstance(n, cst.Name) and n.value == name)


def keyword_parameters(params: cst.Parameters) -> list[str]:
    """The parameters a keyword argument can bind (not positional-only, not ``*args`` / ``**kwargs``)."""
    return [p.name.value for p in (*params.params, *params.kwonly_params)]


def unbind_parameters(params: cst.Parameters, bound: set[str]) -> cst.Parameters:
    """``fn``'s parameters once ``functools.partial`` bound ``bound`` by keyword.

    A positional parameter after a bound one can then only be passed by keyword
    (a positional value would bind the bound one twice), so it becomes keyword-only.
    """
    kept: list[cst.Param] = []
    moved: list[cst.Param] = []
    after_bound = False
    for param in params.params:
        if param.name.value in bound:
            after_bound = True
        else:
            (moved if after_bound else kept).append(param)
    kwonly = [*moved, *(p for p in params.kwonly_params if p.name.value not in bound)]
    star = params.star_arg
    if kwonly and not isinstance(star, (cst.Param, cst.ParamStar)):
        star = cst.ParamStar()
    elif not kwonly and isinstance(star, cst.ParamStar):
        star = cst.MaybeSentinel.DEFAULT
    strip = cst.MaybeSentinel.DEFAULT
    return params.with_changes(
        params=[p.with_changes(comma=strip) for p in kept],
        kwonly_params=[p.with_changes(comma=strip) for p in kwonly],
        star_arg=star,
    )
