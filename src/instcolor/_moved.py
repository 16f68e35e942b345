"""Old module paths, kept working with a DeprecationWarning (see ``docs/architecture.md``).

Each old module is a two-line shim: ``__getattr__ = moved(__name__, "new.module", ...)``.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable


def moved(old: str, *new: str) -> Callable[[str], object]:
    """A module ``__getattr__`` that finds ``name`` in the ``new`` modules, warning once per access."""

    def __getattr__(name: str) -> object:
        if name.startswith("__"):
            raise AttributeError(name)
        for module_name in new:
            module = importlib.import_module(module_name)
            if hasattr(module, name):
                warnings.warn(
                    f"{old}.{name} moved to {module_name}.{name}; {old} will be removed",
                    DeprecationWarning,
                    stacklevel=2,
                )
                return getattr(module, name)
        raise AttributeError(f"module {old!r} has no attribute {name!r}")

    return __getattr__
