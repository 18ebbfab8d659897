"""The ``flaxify`` command line: one click group, thin subcommands.

Each subcommand lives in ``flaxify/commands/<name>.py``, parses its options,
hands off to an API module (``flaxify.migrate``, ``flaxify.lint``,
``flaxify.equivalence``) and prints through ``flaxify.reporting``.

Exit codes (DESIGN.md): 0 clean or equivalent; 1 findings, not equivalent,
``--check`` would change files, or some file failed; 2 usage or environment error.
"""

from __future__ import annotations

import sys
from typing import Sequence

import click

from flaxify import __version__

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_USAGE = 2


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="flaxify")
def cli() -> None:
    """Move JAX projects from Haiku to Flax Linen, exactly, and keep them jit-clean."""


def _register_commands() -> None:
    # Imported here, not at the top, so that `flaxify --help` stays fast and a
    # command's heavy dependencies (jax) load only when that command runs.
    from flaxify.commands import migrate as migrate_cmd

    cli.add_command(migrate_cmd.migrate)
    from flaxify.commands import lint as lint_cmd

    cli.add_command(lint_cmd.lint)
    from flaxify.commands import check as check_cmd

    cli.add_command(check_cmd.check)
    cli.add_command(check_cmd.convert_params)


_register_commands()


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
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        return EXIT_FINDINGS
    return EXIT_OK


def entry() -> None:
    sys.exit(main())
