"""Runs the migrate codemods over one file, in order, and collects the TODOs.

The pipeline, one construct family per module:

0. ``lifted_loops.py`` turns ``hk.fori_loop`` / ``hk.while_loop`` over pure
   functions into their ``jax.lax`` twins (before the functions move into
   classes);
1. ``transforms.py`` turns functions given to ``hk.transform`` /
   ``hk.transform_with_state`` (call or decorator) into Linen module classes
   and the transformed variables into module instances; an
   ``hk.multi_transform`` template's module becomes the instance
   (``multi_transform.py``);
2. ``modules.py`` turns ``hk.Module`` subclasses (and those new classes) into
   Linen dataclass modules: fields, ``setup()``, ``@nn.compact``, Haiku names,
   and the layers, parameters, state, RNG and lifted transforms inside them;
3. ``expressions.py`` rewrites Haiku layers, pools, initializers, unrolls and
   layer stacks used outside module scopes (helper functions, module-level
   constants);
3b. ``module_attributes.py`` rewrites reads of a Haiku layer's attributes
   (``self.proj.output_size``) to the Linen layer's fields, or marks them TODO;
4. ``callsites.py`` rewrites ``net.init`` / ``net.apply`` to Flax's signatures
   (``rngs=``, ``mutable=``, ``method=``);
4b. ``precision.py`` applies ``hk.mixed_precision`` policies set at module
   level or at the top of a module-level function (on ``hk.Linear``,
   ``hk.ConvND``, ``hk.BatchNorm``, ``hk.LayerNorm`` or a module class of the
   file) as ``dtype=`` / ``param_dtype=`` on the layers and casts around calls;
   ``custom_getters.py`` turns ``with hk.custom_getter(cast):`` blocks into
   ``nn.map_variables`` on the layers built in them (``custom_creators.py``
   likewise for creators fixing the initial values); ``intercept.py`` turns
   ``hk.intercept_methods`` into ``nn.intercept_methods`` where the interceptor
   sees the same calls; ``name_scope.py`` moves ``with hk.name_scope("s"):``
   blocks (``"a/b"``, nested) into closures run by ``NameScope`` submodules;
5. ``leftovers.py`` marks every Haiku reference still standing with a TODO, so
   nothing is ever left silently half-migrated; then Haiku imports are removed
   once unused, ``flax.linen`` is added (each added import in its section,
   ``import_order.py``), and the helpers the rewrites refer to (exact
   Haiku-layout ``LSTM``, ``MultiHeadAttention``, ``layer_stack``, ...) are
   emitted once per file.

Each pass is a LibCST ``ContextAwareTransformer`` (see ``base.py``); they
share a :class:`~flaxify.migrate.base.MigrationState` through the codemod
context. The source is parsed once; each pass re-resolves qualified names on
the tree the previous pass produced.
"""

from __future__ import annotations

import libcst as cst
from libcst.codemod import CodemodContext

from flaxify.migrate.api import TODO_PREFIX, Migrated, SourceError, Todo
from flaxify.migrate.base import STATE_KEY, MigrationState, choose_aliases, import_table, user_defined_names
from flaxify.migrate.bindings import initializer_names
from flaxify.migrate.callsites import RewriteInitApplyCommand
from flaxify.migrate.custom_creators import CustomCreatorsCommand
from flaxify.migrate.custom_getters import CustomGettersCommand
from flaxify.migrate.expressions import RewriteLooseExpressionsCommand
from flaxify.migrate.imports import tidy_imports
from flaxify.migrate.intercept import InterceptMethodsCommand
from flaxify.migrate.leftovers import MarkLeftoversCommand
from flaxify.migrate.lifted_loops import PureLoopsCommand
from flaxify.migrate.module_attributes import ModuleAttributesCommand
from flaxify.migrate.modules import ConvertModulesCommand
from flaxify.migrate.name_scope import NameScopesCommand
from flaxify.migrate.params_layout import ParamsLayoutCommand
from flaxify.migrate.precision import MixedPrecisionCommand
from flaxify.migrate.project import ProjectIndex
from flaxify.migrate.transforms import ConvertTransformsCommand

PIPELINE = (
    PureLoopsCommand,
    ConvertTransformsCommand,
    ConvertModulesCommand,
    RewriteLooseExpressionsCommand,
    ModuleAttributesCommand,
    RewriteInitApplyCommand,
    MixedPrecisionCommand,
    CustomGettersCommand,
    CustomCreatorsCommand,
    InterceptMethodsCommand,
    NameScopesCommand,
    ParamsLayoutCommand,
    MarkLeftoversCommand,
)


def parse(source: bytes) -> cst.Module:
    """Parses ``source`` or raises :class:`SourceError` with a 1-based position."""
    try:
        return cst.parse_module(source)
    except cst.ParserSyntaxError as err:
        raise SourceError(err.raw_line, err.raw_column + 1, f"cannot parse: {err.message}") from err
    except (UnicodeDecodeError, LookupError, SyntaxError) as err:
        # Undecodable bytes or an unknown PEP 263 encoding cookie.
        raise SourceError(1, 1, f"cannot decode the file: {err}") from err


def run_codemods(source: bytes, path: str, project: ProjectIndex | None = None) -> Migrated:
    """Runs every pass over ``source`` and returns the new bytes and the TODOs."""
    tree = parse(source)
    if not imports_haiku(tree) and not (project and project.imported_by(source)):
        # "haiku" only in a comment, a string or a local name: not a Haiku file,
        # so not one byte may change.
        return Migrated(source=source, changed=False)
    context = CodemodContext(filename=path)
    context.scratch[STATE_KEY] = MigrationState(*choose_aliases(tree), user_names=user_defined_names(tree), project=project)
    state = context.scratch[STATE_KEY]
    state.initializer_names = initializer_names(tree, import_table(tree), nn=state.nn, jnp=state.jnp)
    for command in PIPELINE:
        if command.wanted(source, state):
            tree = command(context).transform_module(tree)
    # Imports are added and removed once, after every pass has said what it needs.
    tree = tidy_imports(tree, context)
    new_source = tree.bytes
    return Migrated(source=new_source, changed=new_source != source, todos=collect_todos(tree))


def imports_haiku(tree: cst.Module) -> bool:
    """True when the file imports ``haiku`` (or a submodule, or a name from it) anywhere."""
    return any(name == "haiku" or name.startswith("haiku.") for name in import_table(tree).values())


def collect_todos(tree: cst.Module) -> tuple[Todo, ...]:
    """Reads the ``# TODO(flaxify): construct: reason`` markers back from the final tree.

    Reading them from the output (instead of remembering them while rewriting)
    keeps line numbers exact and makes a second run report the same TODOs.
    """
    todos: list[Todo] = []
    for number, line in enumerate(tree.code.splitlines(), start=1):
        text = line.strip()
        if not text.startswith(TODO_PREFIX):
            continue
        construct, _, reason = text[len(TODO_PREFIX) :].partition(": ")
        todos.append(Todo(line=number + 1, construct=construct, reason=reason))
    return tuple(todos)
