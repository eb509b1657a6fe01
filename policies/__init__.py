"""RLModules of DSM-NAS: the subspace-graph encoder and the GNN + LSTM controller.

The classes are loaded on first use (`from dsmnas.policies import DSMNASModule` works as
ever), so that importing a light submodule (`policies.options`, which the settings read to
check their values) imports no torch.
"""

from dsmnas import _guard

_guard(__name__)

_EXPORTS = {
    "DSMController": "dsmnas.policies.dsm_module",
    "DSMModuleConfig": "dsmnas.policies.dsm_module",
    "DSMNASModule": "dsmnas.policies.dsm_module",
    "OBS_KEYS": "dsmnas.policies.dsm_module",
    "EdgeSAGEConv": "dsmnas.policies.gnn",
    "SubspaceGraphEncoder": "dsmnas.policies.gnn",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
