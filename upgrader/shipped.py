"""Where the data folders that ship with upgrader are: ``migrations/`` and ``playbooks/``.

The design card keeps them at the top level of the repository; the wheel carries them inside the
package (``upgrader/migrations``, mapped in pyproject.toml's build configuration). An installed
wheel finds them inside the package, a checkout (editable install) beside it.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def shipped_dir(name: str) -> Path:
    """The shipped folder ``name`` (``"migrations"`` or ``"playbooks"``)."""
    inside = _PACKAGE / name
    return inside if inside.is_dir() else _PACKAGE.parent / name
