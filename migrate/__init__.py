"""Haiku → Flax Linen source rewrites (installed as ``flaxify.migrate``)."""

from flaxify.migrate.api import Migrated, SourceError, Todo, migrate_source

__all__ = ["Migrated", "SourceError", "Todo", "migrate_source"]
