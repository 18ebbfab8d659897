"""The one place that prints.

Machine output (diffs, lint findings, JSON) goes to stdout; progress, summaries
and errors go to stderr (DESIGN.md). Every other module returns values or
strings and hands them here.
"""

from __future__ import annotations

import sys
from typing import Iterable, Iterator, TypeVar

import click

T = TypeVar("T")


def out(text: str, *, nl: bool = True) -> None:
    """Writes machine-readable output to stdout."""
    click.echo(text, nl=nl)


def err(text: str) -> None:
    """Writes a human message (summary, warning, error) to stderr."""
    click.echo(text, err=True)


def error_at(path: str, line: int, column: int, message: str) -> None:
    """Writes ``path:line:col: error: message`` to stderr (1-based line and column)."""
    err(f"{path}:{line}:{column}: error: {message}")


def progress(items: Iterable[T], *, length: int, label: str, threshold: int = 50) -> Iterator[T]:
    """Yields ``items``, drawing a progress bar on stderr for long runs on a terminal."""
    if length < threshold or not sys.stderr.isatty():
        yield from items
        return
    with click.progressbar(items, length=length, label=label, file=sys.stderr) as bar:
        yield from bar
