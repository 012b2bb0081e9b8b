"""Names operators give things (clusters, sandboxes): validated at the edge, used in paths later."""

from __future__ import annotations

import re

from upgrader.errors import InvalidNameError

_NAME = re.compile(r"^[a-z][a-z0-9-]{0,62}$")


def validate_name(name: str, *, what: str = "cluster") -> str:
    if not _NAME.match(name) or name.endswith("-"):
        raise InvalidNameError(
            f"invalid {what} name {name!r}: use lowercase letters, digits and '-', "
            "1 to 63 characters, starting with a letter"
        )
    return name
