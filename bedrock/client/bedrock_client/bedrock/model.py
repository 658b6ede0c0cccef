"""The serving base class, under the first generation's name."""

from bdrk.model import BaseModel

__all__ = ["BaseModel"]
