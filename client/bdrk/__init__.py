"""Bedrock's client, in the API of Basis AI's ``bdrk``."""

from bdrk._version import __version__

__all__ = ["__version__"]
