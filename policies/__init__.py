"""RLModules of DSM-NAS: the subspace-graph encoder and the GNN + LSTM controller."""

from dsmnas import _guard

_guard(__name__)

from dsmnas.policies.dsm_module import OBS_KEYS, DSMController, DSMModuleConfig, DSMNASModule
from dsmnas.policies.gnn import EdgeSAGEConv, SubspaceGraphEncoder

__all__ = [
    "DSMController",
    "DSMModuleConfig",
    "DSMNASModule",
    "EdgeSAGEConv",
    "OBS_KEYS",
    "SubspaceGraphEncoder",
]
