"""The last pass: nothing Haiku stays behind unmarked, and imports are tidied.

Every reference to ``haiku`` that the earlier passes could not rewrite gets a
``# TODO(flaxify): hk.X: why`` above its statement (once: a statement that
already carries a flaxify TODO is not marked again, which also makes a second
run a no-op). Haiku imports are then removed if unused, and the names the
rewrites emitted (``nn``, ``jnp``, ``jax``, ``Any``) are imported if missing.
"""

from __future__ import annotations

import libcst as cst
from libcst.codemod.visitors import RemoveImportsVisitor
from libcst.metadata import QualifiedNameProvider

from flaxify.migrate import kernel_init
from flaxify.migrate.base import FlaxifyCommand
from flaxify.migrate.layers import helper_class
from flaxify.migrate.rewrite import JAX_IMPORT, ImportSpec
from flaxify.migrate.unsupported import reason


class MarkLeftoversCommand(FlaxifyCommand):
    DESCRIPTION = "Marks remaining Haiku references and tidies imports."

    def visit_Import(self, node: cst.Import) -> bool:
        if any(_is_haiku(alias.name) for alias in node.names):
            RemoveImportsVisitor.remove_unused_import_by_node(self.context, node)
        return False

    def visit_ImportFrom(self, node: cst.ImportFrom) -> bool:
        if node.module is not None and _is_haiku(node.module):
            RemoveImportsVisitor.remove_unused_import_by_node(self.context, node)
        return False

    def visit_Attribute(self, node: cst.Attribute) -> bool:
        return self._mark(node)

    def visit_Name(self, node: cst.Name) -> bool:
        # Only these names may need an import (_import_emitted): ask the scope about no other.
        emitted = (self.state.nn, self.state.jnp, "jax", "Any")
        if node.value in emitted and not self.get_metadata(QualifiedNameProvider, node, set()):
            self._import_emitted(node.value)
        return self._mark(node)

    def _mark(self, node: cst.BaseExpression) -> bool:
        qualname = self.haiku_name(node)
        if qualname is None:
            return True
        api = qualname.removeprefix("haiku").lstrip(".")
        self.todo("hk." + api if api else "haiku", reason(api))
        return False

    def leave_Module(self, original_node: cst.Module, updated_node: cst.Module) -> cst.Module:
        """Emits the helper classes the rewrites construct (``MLP``, ``Bias``), once each, and hoists
        Haiku's default weight initializer into one constant (``kernel_init.py``)."""
        classes = []
        emitted: set[str] = set()
        for qualname in sorted(self.state.helper_classes):
            found = helper_class(qualname, nn=self.state.nn, jnp=self.state.jnp)
            assert found is not None
            name, source, imports = found
            if _defines(updated_node, name) or name in emitted:
                continue  # e.g. hk.layer_stack and hk.experimental.layer_stack share one helper
            emitted.add(name)
            for spec in imports:
                self.need_import(spec)
            if f"{self.state.jnp}." in source:
                self.need_jnp()  # the engine owns the jax.numpy import and its local name
            if f"{self.state.nn}." in source:
                self.need_nn()
            klass = cst.parse_statement(source)
            classes.append(klass.with_changes(leading_lines=[cst.EmptyLine(indent=False)] * 2))
        body = list(updated_node.body)
        at = _after_imports(body)
        rest, constant = kernel_init.hoist([*classes, *body[at:]], nn=self.state.nn, user_names=self.state.user_names)
        if constant is None and not classes:
            return updated_node
        head = [] if constant is None else [constant.with_changes(leading_lines=[cst.EmptyLine(indent=False)] * 2 + list(constant.leading_lines))]
        return updated_node.with_changes(body=[*body[:at], *head, *rest])

    def _import_emitted(self, name: str) -> None:
        """Imports a name the rewrites emitted but nothing binds yet."""
        if name == self.state.nn:
            self.need_nn()
        elif name == self.state.jnp:
            self.need_jnp()
        elif name == "jax":
            self.need_import(JAX_IMPORT)
        elif name == "Any":
            self.need_import(ImportSpec("typing", "Any", None))


def _defines(module: cst.Module, name: str) -> bool:
    return any(isinstance(s, (cst.ClassDef, cst.FunctionDef)) and s.name.value == name for s in module.body)


def _after_imports(body: list[cst.BaseStatement]) -> int:
    """Index just past the leading docstring, imports and module constants' imports."""
    at = 0
    for index, statement in enumerate(body):
        if isinstance(statement, cst.SimpleStatementLine) and all(
            isinstance(small, (cst.Import, cst.ImportFrom, cst.Expr)) for small in statement.body
        ):
            at = index + 1
        else:
            break
    return at


def _is_haiku(node: cst.BaseExpression) -> bool:
    dotted = cst.Module([]).code_for_node(node)
    return dotted == "haiku" or dotted.startswith("haiku.")


