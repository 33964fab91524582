"""The course's exception types. Each message says what to do next."""
from __future__ import annotations

import difflib
import os
import sys
import warnings
from typing import Iterable

__all__ = ["CourseError", "ImageLoadError", "ImageConversionWarning", "LayerNotFoundError",
           "ModelNotAvailableError", "WeightsChecksumError", "NoClassesError", "close_matches", "warn"]


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


_LIB = os.path.dirname(os.path.abspath(__file__)) + os.sep


def warn(message: str, category: type[Warning] = UserWarning) -> None:
    """``warnings.warn`` attributed to the first caller outside ``lib`` (the reader's own line),
    however deep inside ``lib`` the warning is raised."""
    frame, level = sys._getframe(1), 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_LIB):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level + 1)
