"""The problem: search spaces, benchmarks, the subspace graph and the DSMNAS-v0 environment.

Importing `envs` registers `DSMNAS-v0` with gymnasium; this package never imports RLlib.
"""

from dsmnas import _guard

_guard(__name__)

from gymnasium.envs.registration import register
from gymnasium.envs.registration import registry as _gym_registry

from dsmnas.envs.config import EnvConfig
from dsmnas.envs.dsm_env import DSMNASEnv, dsm_spaces
from dsmnas.envs.errors import ConfigError, MissingFileError
from dsmnas.envs.records import HISTORY_COLUMNS, QueryRecord, history_frame
from dsmnas.envs.registry import SpaceSpec, get_spec, space_names

ENV_ID = "DSMNAS-v0"
if ENV_ID not in _gym_registry:
    register(id=ENV_ID, entry_point="dsmnas.envs.dsm_env:DSMNASEnv")

__all__ = [
    "DSMNASEnv", "EnvConfig", "ENV_ID", "HISTORY_COLUMNS", "QueryRecord", "history_frame",
    "SpaceSpec", "get_spec", "space_names", "ConfigError", "MissingFileError", "dsm_spaces",
]
