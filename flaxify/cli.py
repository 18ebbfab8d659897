"""The ``flaxify`` command line: one click group, thin subcommands.

Each subcommand lives in ``flaxify/commands/<name>.py``, parses its options,
hands off to an API module (``flaxify.migrate``, ``flaxify.lint``,
``flaxify.equivalence``) and prints through ``flaxify.reporting``.

Exit codes (DESIGN.md): 0 clean or equivalent; 1 findings, not equivalent,
``--check`` would change files, or some file failed; 2 usage or environment error.
"""

from __future__ import annotations

import importlib
import sys
from typing import Sequence

import click

from flaxify import __version__

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


# Each subcommand's module is imported only when that subcommand runs (or
# `--help` lists them): `flaxify lint` never pays for LibCST, `flaxify migrate`
# never for jax, and a warm cached lint starts in a fraction of a second.
COMMANDS: dict[str, tuple[str, str]] = {
    "check": ("flaxify.commands.check", "check"),
    "convert-params": ("flaxify.commands.check", "convert_params"),
    "lint": ("flaxify.commands.lint", "lint"),
    "migrate": ("flaxify.commands.migrate", "migrate"),
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module, attribute = COMMANDS[cmd_name]
        command: click.Command = getattr(importlib.import_module(module), attribute)
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="flaxify")
def cli() -> None:
    """Move JAX projects from Haiku to Flax Linen, exactly, and keep them jit-clean."""


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the CLI and returns its exit code instead of exiting (testable)."""
    try:
        code = cli.main(args=list(argv) if argv is not None else None, standalone_mode=False)
        # click returns (not raises) the code of ctx.exit(code) when standalone_mode is off.
        if isinstance(code, int):
            return code
    except click.exceptions.Exit as done:
        return int(done.exit_code)
    except click.ClickException as err:
        err.show()
        return EXIT_USAGE
    except click.exceptions.Abort:  # Ctrl-C: the shell's convention, 128 + SIGINT
        click.echo("Aborted.", err=True)
        return EXIT_INTERRUPTED
    return EXIT_OK


def entry() -> None:
    sys.exit(main())
