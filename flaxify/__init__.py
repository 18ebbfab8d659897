"""flaxify: move JAX projects from Haiku to Flax Linen, exactly, and keep them jit-clean."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("flaxify")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
