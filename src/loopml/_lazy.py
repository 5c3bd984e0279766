"""Names of a package that load on first use (PEP 562), so importing the package stays cheap."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, names: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The module-level ``__getattr__`` and ``__dir__`` of ``package`` for lazily imported ``names``.

    Parameters
    ----------
    package
        The package's ``__name__``.
    names
        Public name -> the module that defines it; a name is imported from
        there the first time it is looked up, then kept on the package.

    Examples
    --------
    >>> __getattr__, __dir__ = lazy_exports(__name__, {"Recipe": "loopml.prep.recipe"})  # doctest: +SKIP
    """

    def __getattr__(name: str) -> Any:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *names})

    return __getattr__, __dir__


__all__ = ["lazy_exports"]
