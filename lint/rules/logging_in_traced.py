"""JX102: logging a traced value."""

from __future__ import annotations

import ast

from flaxify.lint.model import Kind
from flaxify.lint.rule import Rule, TracedContext
from flaxify.lint.rules._common import shows_traced

LOG_METHODS = frozenset({"debug", "info", "warning", "warn", "error", "critical", "exception", "log"})
LOGGER_NAMES = frozenset({"logger", "log", "_logger", "LOGGER", "_LOG", "LOG", "logging"})


class LoggingInTracedCode(Rule):
    """
    ## What it does
    Flags ``logging.info(...)``/``logger.warning(...)`` (and ``absl.logging``) calls that
    log a traced value inside jitted code or a helper it reaches.

    ## Why is this bad?
    Like ``print``, logging runs once at trace time and records a tracer repr, not the
    values of any actual step; later calls log nothing.

    ## Example
    ```python
    @jax.jit
    def train_step(state, batch):
        loss = compute_loss(state, batch)
        logging.info("loss %s", loss)
        return loss
    ```

    ## Use instead
    ```python
    @jax.jit
    def train_step(state, batch):
        loss = compute_loss(state, batch)
        return loss  # log on the host: logging.info("loss %s", float(loss))
    ```
    or ``jax.debug.print``/``jax.debug.callback`` for values inside the step.

    ## Fix safety
    No fix: where the value should be logged is the author's decision.
    """

    CODE = "JX102"
    NAME = "logging-in-traced-code"
    MESSAGE = ("logging a traced value runs once at trace time and records a tracer; return the value and log "
               "it on the host, or use `jax.debug.callback`")
    MIN_KIND = Kind.STAGE
    VALID = [
        "import jax, logging\n@jax.jit\ndef f(x):\n    logging.info('shape %s', x.shape)\n    return x",
        "import jax, logging\ndef f(x):\n    logging.info('x %s', x)\n    return x",
    ]
    INVALID = [
        "import jax, logging\n@jax.jit\ndef f(x):\n    logging.info('x %s', x)\n    return x",
        "import jax, logging\nlogger = logging.getLogger(__name__)\n@jax.jit\ndef f(x):\n"
        "    logger.warning('x %s', x * 2)\n    return x",
        "import jax\nfrom absl import logging\n@jax.jit\ndef f(x):\n    logging.info('x %s', x)\n    return x",
        "import jax, logging\n@jax.jit\ndef f(x):\n    logging.info(f'loss={x.mean()}')\n    return x",
    ]

    def visit_Call(self, node: ast.Call, ctx: TracedContext) -> None:
        func = node.func
        if not isinstance(func, ast.Attribute) or func.attr not in LOG_METHODS:
            return
        qualname = ctx.qualname(func) or ""
        is_logging = qualname.startswith(("logging.", "absl.logging."))
        is_logger = isinstance(func.value, ast.Name) and func.value.id in LOGGER_NAMES and not ctx.taint(func.value)
        if (is_logging or is_logger) and shows_traced(node, ctx):
            ctx.report(node)
