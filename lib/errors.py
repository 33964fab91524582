"""The course's exception types. Each message says what to do next."""
from __future__ import annotations

import difflib
from typing import Iterable

__all__ = ["CourseError", "ImageLoadError", "ImageConversionWarning", "LayerNotFoundError",
           "ModelNotAvailableError", "WeightsChecksumError", "NoClassesError", "close_matches"]


class CourseError(Exception):
    """Base class of the errors raised by ``lib``."""


class ImageLoadError(CourseError, ValueError):
    """An image could not be read or is unusable (missing, not an image, too small, too large)."""


class ImageConversionWarning(UserWarning):
    """An image was converted (grayscale, RGBA, 16-bit, palette, CMYK, huge) to what the course expects."""


class LayerNotFoundError(CourseError, KeyError):
    """A layer name is not one of the model's ``named_modules()``."""

    def __str__(self) -> str:  # KeyError would print the message quoted
        return str(self.args[0])


class ModelNotAvailableError(CourseError, RuntimeError):
    """A model bundle cannot be loaded here (unknown name, weights not downloadable offline...)."""


class WeightsChecksumError(CourseError, RuntimeError):
    """A weights file does not match its recorded sha256."""


class NoClassesError(CourseError, ValueError):
    """A class-based method was called on a bundle without a classifier."""


def close_matches(name: str, names: Iterable[str], n: int = 5) -> str:
    """'did you mean ...' text for an unknown ``name``, listing a few close ``names``."""
    names = list(names)
    close = difflib.get_close_matches(name, names, n=n, cutoff=0.4)
    if not close:
        close = names[:n]
    return ", ".join(repr(c) for c in close)
