"""Errors raised by ``flaxify.equivalence``.

Two families, matching the CLI exit codes (DESIGN.md):

* :class:`CheckUsageError` and its subclasses are *usage or environment* errors
  (bad reference, bad input spec, a model that raises): exit code 2.
* :class:`ParamMappingError` means the two parameter trees do not correspond.
  That is a *result* (the models are not equivalent, exit code 1); ``compare``
  reports it in the :class:`~flaxify.equivalence.report.Report` instead of raising.
"""

from __future__ import annotations


class CheckUsageError(Exception):
    """Something the user supplied cannot be used; the message says what and how to fix it."""


class InvalidInputSpecError(CheckUsageError):
    """An ``--input`` SPEC could not be parsed or loaded."""


class UnresolvableRefError(CheckUsageError):
    """A ``file.py:NAME`` or ``package.module:NAME`` reference could not be resolved."""


class UnsupportedModelKindError(CheckUsageError):
    """A reference resolved to an object that is not a supported Haiku or Flax model kind."""


class ModelRaisedError(CheckUsageError):
    """Running the user's model (init or apply) raised an exception."""


class CheckpointReadError(CheckUsageError):
    """A checkpoint could not be read (missing, wrong format, pickle without ``--allow-pickle``)."""


class ParamMappingError(ValueError):
    """The Haiku and Flax variable trees do not map one to one.

    The message names every unmapped Haiku leaf, every left-over Flax leaf and
    every shape mismatch, with shapes.
    """
