"""instcolor: instance-aware colorization of grayscale photographs and film.

The package is layered (see ``docs/architecture.md``); importing it loads nothing heavy.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["Colorizer", "ColorizeResult", "Instances", "__version__"]


def __getattr__(name: str):
    # The package imports torch lazily, so that `instcolor --help` starts fast.
    if name in ("Colorizer", "ColorizeResult"):
        from instcolor.inference import pipeline

        return getattr(pipeline, name)
    if name == "Instances":
        from instcolor.instances import Instances

        return Instances
    raise AttributeError(f"module 'instcolor' has no attribute {name!r}")
