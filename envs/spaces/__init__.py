"""Search spaces: the interface (`SearchSpace`) and the built-in spaces' encodings. The bottom
layer of `envs`: nothing here imports the registry, benchmarks or the env (a space by name is
`envs.registry.get_space`)."""

from __future__ import annotations

from dsmnas.envs.spaces.base import SearchSpace, hamming
from dsmnas.envs.spaces.mobilenet import MobileNetSpace
from dsmnas.envs.spaces.nb201 import NB201Space


__all__ = ["SearchSpace", "NB201Space", "MobileNetSpace", "hamming"]
