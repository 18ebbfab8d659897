"""``python -m flaxify``: the same CLI as the ``flaxify`` console script."""

from flaxify.cli import entry

entry()
