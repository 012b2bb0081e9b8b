"""Data shipped inside the package: the built-in release catalog (``catalog.txt``).

The one reader of that file, for the planner's catalog and the sandbox's releases alike.
"""

from __future__ import annotations

from importlib import resources

from upgrader.domain.catalog import Catalog, parse_catalog


def builtin_catalog() -> Catalog:
    """The release catalog that ships with this version of upgrader."""
    text = resources.files(__name__).joinpath("catalog.txt").read_text(encoding="utf-8")
    return parse_catalog(text, source="built-in catalog")
