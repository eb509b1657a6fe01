"""The subspace graph: K centers, their validation accuracies and weak-to-better edges.

Node i stands for the subspace Omega_{alpha_i} = {beta : D(alpha_i, beta) <= M}. There is a
directed edge i -> j when center i is weaker than center j (val_i < val_j, or equal and i < j),
so every pair is linked once and there are K(K-1)/2 edges (section III-B of the paper). Edge
features (h_j - h_i) are the policy's business: the graph only says which edges exist.
"""

from __future__ import annotations

import numpy as np
from dsmnas.envs.errors import ConfigError


def weak_to_better(val_acc: np.ndarray) -> np.ndarray:
    """(K, K) float32 adjacency: a[i, j] = 1 iff edge i -> j (i weaker than j, ties by index)."""
    v = np.asarray(val_acc)
    k = len(v)
    lower = v[:, None] < v[None, :]
    tie = (v[:, None] == v[None, :]) & np.triu(np.ones((k, k), dtype=bool), 1)
    return (lower | tie).astype(np.float32)


class SubspaceGraph:
    """K subspace centers; `replace` swaps a center and recomputes the edges touching it."""

    def __init__(self, centers: np.ndarray, val_acc: np.ndarray):
        self._set(np.array(centers, dtype=np.int64), np.array(val_acc, dtype=np.float64))

    def _set(self, centers: np.ndarray, val_acc: np.ndarray) -> None:
        if centers.ndim != 2 or len(centers) != len(val_acc) or len(centers) < 1:
            raise ConfigError(
                f"a subspace graph needs K >= 1 centers with one accuracy each; got centers of "
                f"shape {centers.shape} and {len(val_acc)} accuracies"
            )
        self._centers = centers
        self._val = val_acc
        self._adj = weak_to_better(val_acc)
        for arr in (self._centers, self._val, self._adj):
            arr.flags.writeable = False

    @property
    def K(self) -> int:
        return len(self._val)

    @property
    def centers(self) -> np.ndarray:
        """(K, L) read-only tokens of the centers."""
        return self._centers

    @property
    def val_acc(self) -> np.ndarray:
        """(K,) read-only validation accuracies of the centers."""
        return self._val

    @property
    def adjacency(self) -> np.ndarray:
        """(K, K) read-only weak-to-better adjacency (see `weak_to_better`)."""
        return self._adj

    def replace(self, i: int, tokens: np.ndarray, val_acc: float) -> None:
        """Make `tokens` the center of subspace i (new arrays: old views stay valid)."""
        centers = self._centers.copy()
        centers[i] = tokens
        val = self._val.copy()
        val[i] = val_acc
        self._set(centers, val)

    def get_state(self) -> dict:
        """The centers and their accuracies (the edges follow from them)."""
        return {"centers": self._centers.copy(), "val_acc": self._val.copy()}

    @classmethod
    def from_state(cls, state: dict) -> "SubspaceGraph":
        return cls(state["centers"], state["val_acc"])

    def best(self) -> int:
        """Index of the best center by validation accuracy (lowest index on ties)."""
        return int(np.argmax(self._val))
