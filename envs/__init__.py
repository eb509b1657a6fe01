"""The problem: search spaces, benchmarks, the subspace graph and the DSMNAS-v0 environment.

Importing `envs` registers `DSMNAS-v0` with gymnasium; this package never imports RLlib.
"""

from gymnasium.envs.registration import register, registry

from envs.config import EnvConfig
from envs.dsm_env import HISTORY_COLUMNS, DSMNASEnv, dsm_spaces

ENV_ID = "DSMNAS-v0"
if ENV_ID not in registry:
    register(id=ENV_ID, entry_point="envs.dsm_env:DSMNASEnv")

__all__ = ["DSMNASEnv", "EnvConfig", "ENV_ID", "HISTORY_COLUMNS", "dsm_spaces"]
