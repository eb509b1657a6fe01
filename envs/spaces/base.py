"""The search-space interface: what an architecture is, independent of how it is scored.

An architecture is a fixed-length vector of L integer tokens, each one of C choices. A space
owns the encoding (text form <-> tokens), validity and the canonical form, the per-position
op mask that a policy applies, Hamming distance (eq. 4 of the paper), applying a sequence of
(position, op) edits (alpha (+) delta-alpha) and uniform sampling. It never scores anything:
scoring belongs to `envs.benchmarks`.
"""

from __future__ import annotations

import abc
import functools

import numpy as np
from dsmnas.envs.errors import ConfigError

TOKEN_DTYPE = np.int64


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray | int:
    """D(alpha, beta): the number of positions whose tokens differ (broadcasts over rows)."""
    d = np.count_nonzero(np.asarray(a) != np.asarray(b), axis=-1)
    return int(d) if np.ndim(d) == 0 else d


class SearchSpace(abc.ABC):
    """A space of L positions with C choices each; subclasses set `name`, `L`, `C`."""

    name: str
    L: int
    C: int
    dense: bool = True
    """Every token vector the op mask allows is an architecture (after `canonical`). False for
    spaces whose valid architectures are a listed subset (a table's rows): methods that draw
    whole token vectors from the mask (REINFORCE's controller, random-mined's ball) refuse them."""

    # -- text form -------------------------------------------------------------------------
    @abc.abstractmethod
    def parse(self, text: str) -> np.ndarray:
        """Tokens of a text form; ValueError naming the text and the expected form."""

    @abc.abstractmethod
    def format(self, tokens: np.ndarray) -> str:
        """The canonical text form of `tokens`."""

    def parse_any(self, text: str) -> np.ndarray:
        """Tokens of any accepted description (the text form, unless a space adds more)."""
        return self.parse(text)

    # -- validity ----------------------------------------------------------------------------
    def op_mask(self) -> np.ndarray:
        """(L, C) float32, 1 where a choice is allowed at a position (a policy masks with it)."""
        return np.ones((self.L, self.C), dtype=np.float32)

    def canonical(self, tokens: np.ndarray) -> np.ndarray:
        """The representative of `tokens`' equivalence class (identity unless overridden)."""
        return tokens

    def is_valid(self, tokens: np.ndarray) -> bool:
        t = np.asarray(tokens)
        if t.shape != (self.L,) or not np.issubdtype(t.dtype, np.integer):
            return False
        if t.min() < 0 or t.max() >= self.C:
            return False
        return bool(self._allowed[np.arange(self.L), t].all())

    @functools.cached_property
    def _allowed(self) -> np.ndarray:
        """`op_mask()` as booleans, computed once."""
        return self.op_mask().astype(bool)

    def validate(self, tokens) -> np.ndarray:
        """`tokens` as a canonical token array, or ValueError naming them and the rule broken."""
        t = np.asarray(tokens)
        if not self.is_valid(t):
            raise ConfigError(
                f"invalid {self.name} architecture tokens {t.tolist()}: expected {self.L} "
                f"integers in 0..{self.C - 1} allowed by the space's op mask"
            )
        return self.canonical(t.astype(TOKEN_DTYPE))

    def key(self, tokens: np.ndarray) -> int:
        """The architecture's integer id: its tokens read as the digits of a base-C number
        (the one key of caches and repeat detection; NAS-Bench-201's dense id)."""
        k = 0
        for t in np.asarray(tokens).tolist():
            k = k * self.C + int(t)
        return k

    # -- moves -------------------------------------------------------------------------------
    def distance(self, a: np.ndarray, b: np.ndarray) -> int:
        return hamming(a, b)

    def apply_edits(self, tokens: np.ndarray, edits) -> np.ndarray:
        """beta = alpha (+) delta-alpha: set position p to op o for each (p, o), in order.

        Returns a new array (centers are never mutated: the official code's in-place edit is
        a known defect). Repeating a position or choosing the current op is allowed, so
        D(alpha, beta) <= len(edits) before canonicalisation. An edit the op mask forbids
        (a policy that masks never makes one) leaves its position unchanged, so every action
        gives a valid architecture. The result is brought to canonical form.
        """
        beta = np.array(tokens, dtype=TOKEN_DTYPE, copy=True)
        allowed = self._allowed
        for position, op in edits:
            if allowed[position, op]:
                beta[position] = op
        return self.canonical(beta)

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        """A uniformly random valid architecture."""
        mask = self.op_mask()
        allowed = [np.flatnonzero(mask[p]) for p in range(self.L)]
        return self.canonical(
            np.array([rng.choice(a) for a in allowed], dtype=TOKEN_DTYPE)
        )
