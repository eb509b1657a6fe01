"""Search spaces, by name: `get_space("nb201")`."""

from __future__ import annotations

from envs.spaces.base import SearchSpace, hamming
from envs.spaces.mobilenet import MobileNetSpace
from envs.spaces.nb201 import NB201Space

_SPACES = {"nb201": NB201Space, "mobilenet": MobileNetSpace}


def get_space(name: str) -> SearchSpace:
    """The search space registered as `name`; ValueError listing the known names."""
    try:
        return _SPACES[name]()
    except KeyError:
        raise ValueError(
            f"unknown search space {name!r}; allowed: {', '.join(sorted(_SPACES))}"
        ) from None


__all__ = ["SearchSpace", "NB201Space", "MobileNetSpace", "get_space", "hamming", "SPACE_NAMES"]
SPACE_NAMES = tuple(sorted(_SPACES))
