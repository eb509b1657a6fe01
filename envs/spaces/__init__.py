"""Search spaces, by name: `get_space("nb201")` (any name `envs.registry` resolves)."""

from __future__ import annotations

from dsmnas.envs.spaces.base import SearchSpace, hamming
from dsmnas.envs.spaces.mobilenet import MobileNetSpace
from dsmnas.envs.spaces.nb201 import NB201Space


def get_space(name: str) -> SearchSpace:
    """The search space of the space named `name` (a registered name or an import string);
    ConfigError listing the known names."""
    from dsmnas.envs.registry import get_spec

    return get_spec(name).space()


__all__ = ["SearchSpace", "NB201Space", "MobileNetSpace", "get_space", "hamming"]
