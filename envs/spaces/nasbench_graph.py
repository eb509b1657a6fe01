"""NAS-Bench-Graph's space (Qin et al., NeurIPS 2022; PyPI `nas-bench-graph`) as 5 tokens.

An architecture is a link pattern and four operations: `Arch(link, ops)` of the package, with
`link` one of the 9 lists of `nas_bench_graph.architecture.link_list` (`link[i]` is the input
of operation i: 0 the cell's input, j the output of operation j) and `ops` four names of
`gnn_list` (gat, gcn, gin, cheb, sage, arma, graph, fc, skip; the `proteins` data has only
`gnn_list_proteins`: gcn, sage, arma, fc, skip). Names and orders are the package's, never
copied here.

Tokens (L = 5, C = 9): position 0 the index of the link pattern in `link_list`, positions 1-4
the index of each operation in `gnn_list`. The op mask allows, at positions 1-4, the dataset's
operations, except `skip` at position 1. That one rule keeps the all-`skip` architectures,
which have no entry in the data, out of every vector a masked policy, sampler or edit can
produce; and it loses nothing: every one of the benchmark's architectures has an isomorphic
token vector whose first operation is not `skip` (checked exhaustively by the tests).

Isomorphic vectors are one architecture. Its key is the package's own hash,
`Arch(link, ops).valid_hash()` (regularize, move skips, sort equal parts, `hash_arch`), the
key of the benchmark's files; `key` returns it for any vector, so repeat detection and the
budget clock's cache treat isomorphic vectors as one architecture. `canonical` maps a vector
to one representative per hash: the package's canonical (link, ops), decoded from the hash,
when the op mask allows it (94 % of the architectures), else the smallest allowed member in
token order. So every center, answer and history row is written one way per architecture,
and local search's neighbours are distinct architectures. An edit can therefore move the
tokens by more than the edits themselves (the representative of the edited vector), as
absent layers shift in the MobileNet-like space.

The text form is the link pattern's digits and the op names, `0123-gcn-gat-skip-fc`.
"""

from __future__ import annotations

import functools
import re

import numpy as np
from nas_bench_graph.architecture import Arch, gnn_list, gnn_list_proteins, link_list

from dsmnas.envs.errors import ConfigError
from dsmnas.envs.spaces.base import TOKEN_DTYPE, SearchSpace

LINKS = tuple(tuple(int(i) for i in link) for link in link_list)
"""The 9 link patterns, in the package's order (token 0)."""
OPS = tuple(gnn_list)
"""The 9 operations, in the package's order (tokens 1-4)."""
PROTEINS_OPS = tuple(gnn_list_proteins)
"""The operations of the `proteins` data (a subset of `OPS`)."""
SKIP = OPS.index("skip")
NUM_OPS = 4
L = 1 + NUM_OPS
C = max(len(LINKS), len(OPS))
_PLACE = C ** np.arange(L - 1, -1, -1, dtype=TOKEN_DTYPE)
NUM_VECTORS = C ** L
"""Token vectors of L positions with C choices (those out of range of the link and op lists
included: here len(LINKS) == len(OPS) == C, so there are none)."""
_HASH_BASE = len(OPS) + 1
"""`Arch.hash_arch()`'s digit base (default, `use_proteins=False`): link index, then each
op's index in `gnn_list`."""
_TEXT = re.compile(r"^([0-9]{4})-(\w+)-(\w+)-(\w+)-(\w+)$")


def vector_code(tokens) -> int:
    """A token vector's index 0..C**L-1 (its tokens as base-C digits)."""
    return int(np.asarray(tokens, dtype=TOKEN_DTYPE) @ _PLACE)


def _decode_codes(codes: np.ndarray) -> np.ndarray:
    return (np.asarray(codes, dtype=TOKEN_DTYPE)[..., None] // _PLACE) % C


def package_hash(tokens) -> int:
    """`Arch(link, ops).valid_hash()` of a token vector: the key of the benchmark's files."""
    t = [int(x) for x in tokens]
    return int(Arch(list(LINKS[t[0]]), [OPS[o] for o in t[1:]]).valid_hash())


def tokens_of_hash(h: int) -> np.ndarray:
    """The package's canonical (link, ops) of a hash, as tokens (inverse of `hash_arch`)."""
    digits = []
    for _ in range(NUM_OPS):
        h, d = divmod(int(h), _HASH_BASE)
        digits.append(d)
    return np.array([h, *reversed(digits)], dtype=TOKEN_DTYPE)


@functools.lru_cache(maxsize=1)
def hash_table() -> np.ndarray:
    """`package_hash` of every token vector, by `vector_code` (computed once per process:
    59,049 calls of the package's own function, about half a second)."""
    vectors = _decode_codes(np.arange(NUM_VECTORS))
    return np.fromiter((package_hash(v) for v in vectors), dtype=np.int64, count=NUM_VECTORS)


@functools.lru_cache(maxsize=4)
def _representatives(allowed_ops: tuple[tuple[int, ...], ...]) -> np.ndarray:
    """By `vector_code`: the code of the representative of the vector's architecture among
    the vectors `allowed_ops` (per position) allows, or -1 when it has none."""
    hashes = hash_table()
    vectors = _decode_codes(np.arange(NUM_VECTORS))
    allowed = np.ones(NUM_VECTORS, dtype=bool)
    for p, ops in enumerate(allowed_ops):
        allowed &= np.isin(vectors[:, p], ops)
    codes = np.flatnonzero(allowed)  # ascending: the first of a hash is its smallest member
    class_hashes, first = np.unique(hashes[codes], return_index=True)
    rep_of_hash = {}
    for h, smallest in zip(class_hashes.tolist(), codes[first].tolist()):
        own = vector_code(tokens_of_hash(h))
        rep_of_hash[h] = own if allowed[own] and hashes[own] == h else smallest
    return np.array([rep_of_hash.get(h, -1) for h in hashes.tolist()], dtype=np.int64)


class NASBenchGraphSpace(SearchSpace):
    """NAS-Bench-Graph: L = 5 (link pattern, 4 operations), C = 9, all 9 operations."""

    name = "nasbench-graph"
    L = L
    C = C
    ops: tuple[str, ...] = OPS
    """The operations this space allows (the dataset's)."""

    def __init__(self):
        mask = np.zeros((self.L, self.C), dtype=np.float32)
        mask[0, : len(LINKS)] = 1.0
        for name in self.ops:
            mask[1:, OPS.index(name)] = 1.0
        mask[1, SKIP] = 0.0  # no all-skip vector; every architecture keeps a representative
        self._mask = mask

    # -- text form -------------------------------------------------------------------------
    def parse(self, text: str) -> np.ndarray:
        """Tokens (canonical) of `0123-gcn-gat-skip-fc`; any isomorphic writing is accepted."""
        m = _TEXT.match(text.strip()) if isinstance(text, str) else None
        if m is None:
            raise ConfigError(
                f"not a {self.name} architecture: {text!r}; expected a link pattern and four "
                f"operations, e.g. '0123-gcn-gat-skip-fc'"
            )
        link = tuple(int(c) for c in m.group(1))
        if link not in LINKS:
            raise ConfigError(
                f"{text!r}: unknown link pattern {m.group(1)}; allowed: "
                + ", ".join("".join(map(str, lk)) for lk in LINKS)
            )
        bad = [op for op in m.groups()[1:] if op not in self.ops]
        if bad:
            raise ConfigError(
                f"{text!r}: unknown operation {bad[0]!r}; allowed: {', '.join(self.ops)}"
            )
        tokens = np.array([LINKS.index(link)] + [OPS.index(op) for op in m.groups()[1:]],
                          dtype=TOKEN_DTYPE)
        rep = self._rep[vector_code(tokens)]
        if rep < 0:
            raise ConfigError(f"{text!r}: the all-skip architectures have no entry in NAS-Bench-Graph")
        return _decode_codes(rep)

    def format(self, tokens: np.ndarray) -> str:
        t = [int(x) for x in tokens]
        return "-".join(["".join(map(str, LINKS[t[0]])), *(OPS[o] for o in t[1:])])

    # -- validity, canonical form, key -------------------------------------------------------
    def op_mask(self) -> np.ndarray:
        return self._mask.copy()

    @functools.cached_property
    def _rep(self) -> np.ndarray:
        allowed = tuple(tuple(np.flatnonzero(row).tolist()) for row in self._mask)
        return _representatives(allowed)

    def canonical(self, tokens: np.ndarray) -> np.ndarray:
        """The representative of `tokens`' architecture (see the module docstring); vectors
        with no allowed representative (all-skip, another dataset's operations) unchanged."""
        t = np.asarray(tokens, dtype=TOKEN_DTYPE)
        if t.shape != (self.L,) or t.min() < 0 or t.max() >= self.C:
            return t
        rep = self._rep[vector_code(t)]
        return t.copy() if rep < 0 else _decode_codes(rep)

    def key(self, tokens: np.ndarray) -> int:
        """The package's hash (`Arch(link, ops).valid_hash()`): one key per architecture,
        shared by its isomorphic vectors; the key of the benchmark's files."""
        return int(hash_table()[vector_code(tokens)])


class NASBenchGraphProteinsSpace(NASBenchGraphSpace):
    """The same space with the `proteins` data's five operations (the mask allows only
    gcn, sage, arma, fc and skip at positions 1-4)."""

    name = "nasbench-graph-proteins"
    ops = PROTEINS_OPS
