"""Method settings from a plain dict (the registry's `settings`): one rule for every method."""

from __future__ import annotations

import dataclasses
from typing import Any


def parse_settings(method: str, values: dict[str, Any] | None, *classes: type) -> tuple:
    """One instance of each settings dataclass in `classes`, each from the keys it has.

    ValueError naming the unknown keys and listing the allowed ones."""
    values = dict(values or {})
    names = [{f.name for f in dataclasses.fields(c)} for c in classes]
    allowed = sorted(set().union(*names))
    unknown = sorted(set(values) - set(allowed))
    if unknown:
        raise ValueError(
            f"unknown {method} setting(s) {unknown}; allowed: {', '.join(allowed)}"
        )
    return tuple(c(**{k: v for k, v in values.items() if k in n}) for c, n in zip(classes, names))
