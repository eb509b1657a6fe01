"""The MobileNet-like space of Once-for-All's MobileNetV3 supernet, as 20 tokens.

Five units of up to four MBConv layers each; token 4u + j is layer j of unit u:
0 = layer absent, 1..9 = (kernel, expand) over kernel {3, 5, 7} x expand {3, 4, 6} in that
order (1 = (3, 3), 2 = (3, 4), 3 = (3, 6), 4 = (5, 3), ..., 9 = (7, 6)). A unit has depth
2..4, so the first two layers of a unit are never absent (the op mask forbids 0 there), and a
present layer never follows an absent one: the canonical form moves absent layers to the end
of their unit (so an edit that removes a middle layer may shift the unit's later layers, and
D(alpha, beta) can exceed the number of edits by those shifts).

The text form is the 20 digits in units of four, `"5973-4400-1230-9999-5500"`. `to_ofa` /
`from_ofa` convert to and from `ofa`'s `{"ks": [20], "e": [20], "d": [5]}` dicts and
`from_net_config` reads OFA's published `net.config` files. MACs come from `ofa`'s analytic
MobileNetV3 model (`macs_m`), which needs the `ofa` package (imported on first use).
"""

from __future__ import annotations

import functools
import json
import os
import re

import numpy as np

from dsmnas.envs.spaces.base import TOKEN_DTYPE, SearchSpace
from dsmnas.envs.errors import ConfigError

KERNELS = (3, 5, 7)
EXPANDS = (3, 4, 6)
DEPTHS = (2, 3, 4)
UNITS = 5
MAX_DEPTH = 4
OPS = ("absent",) + tuple(f"k{k}e{e}" for k in KERNELS for e in EXPANDS)
"""Token -> name: 0 'absent', then 'k3e3', 'k3e4', ..., 'k7e6'."""

_TEXT = re.compile(r"^\d{4}(-?\d{4}){4}$")
_FILL = (KERNELS[0], EXPANDS[0])
"""(kernel, expand) written into `ofa` dicts for the slots beyond a unit's depth (ignored)."""


def token_of(kernel: int, expand: int) -> int:
    if kernel not in KERNELS or expand not in EXPANDS:
        raise ConfigError(
            f"(kernel {kernel!r}, expand {expand!r}) is not in the space; allowed: kernel in "
            f"{list(KERNELS)}, expand in {list(EXPANDS)}"
        )
    return 1 + KERNELS.index(kernel) * len(EXPANDS) + EXPANDS.index(expand)


def check_width(width_mult: float) -> float:
    if width_mult not in (1.0, 1.2):
        raise ConfigError(f"width_mult must be 1.0 or 1.2 (OFA's MobileNetV3 supernets), got {width_mult!r}")
    return float(width_mult)


class MobileNetSpace(SearchSpace):
    name = "mobilenet"
    L = UNITS * MAX_DEPTH
    C = 1 + len(KERNELS) * len(EXPANDS)

    def __init__(self):
        mask = np.ones((self.L, self.C), dtype=np.float32)
        for u in range(UNITS):
            mask[MAX_DEPTH * u : MAX_DEPTH * u + min(DEPTHS), 0] = 0.0
        self._mask = mask

    # -- text form -------------------------------------------------------------------------
    def parse(self, text: str) -> np.ndarray:
        s = str(text).strip()
        if not _TEXT.match(s):
            raise ConfigError(
                f"not a {self.name} architecture: {text!r}; expected 20 digits 0-9 in five "
                f"units of four, e.g. '5973-4400-1230-9999-5500'"
            )
        return self.validate(np.array([int(c) for c in s if c != "-"], dtype=TOKEN_DTYPE))

    def format(self, tokens: np.ndarray) -> str:
        digits = "".join(str(int(t)) for t in tokens)
        return "-".join(digits[i : i + MAX_DEPTH] for i in range(0, self.L, MAX_DEPTH))

    # -- validity ----------------------------------------------------------------------------
    def op_mask(self) -> np.ndarray:
        return self._mask.copy()

    def canonical(self, tokens: np.ndarray) -> np.ndarray:
        units = np.asarray(tokens, dtype=TOKEN_DTYPE).reshape(UNITS, MAX_DEPTH)
        # stable: present layers keep their order, absent ones go to the end of the unit
        order = np.argsort(units == 0, axis=1, kind="stable")
        return np.take_along_axis(units, order, axis=1).reshape(-1)

    def depths(self, tokens: np.ndarray) -> list[int]:
        units = np.asarray(tokens).reshape(UNITS, MAX_DEPTH)
        return [int(d) for d in np.count_nonzero(units, axis=1)]

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        """OFA's random subnet: per unit a depth uniform in {2, 3, 4}, each present layer's
        (kernel, expand) uniform over the 9 pairs."""
        units = np.zeros((UNITS, MAX_DEPTH), dtype=TOKEN_DTYPE)
        for u in range(UNITS):
            d = int(rng.choice(DEPTHS))
            units[u, :d] = rng.integers(1, self.C, size=d)
        return units.reshape(-1)

    # -- conversions -------------------------------------------------------------------------
    def to_ofa(self, tokens: np.ndarray) -> dict[str, list[int]]:
        """`ofa`'s subnet dict `{"ks": [20], "e": [20], "d": [5]}` of canonical tokens."""
        t = self.validate(tokens)
        ks, e = [], []
        for tok in t:
            if tok == 0:
                k, x = _FILL
            else:
                k, x = divmod(int(tok) - 1, len(EXPANDS))
                k, x = KERNELS[k], EXPANDS[x]
            ks.append(k)
            e.append(x)
        return {"ks": ks, "e": e, "d": self.depths(t)}

    def from_ofa(self, arch: dict) -> np.ndarray:
        """Tokens of an `ofa` subnet dict (slots beyond a unit's depth are ignored)."""
        try:
            ks, e, d = list(arch["ks"]), list(arch["e"]), list(arch["d"])
        except (KeyError, TypeError):
            raise ConfigError(
                f"not an ofa subnet dict: {arch!r}; expected keys 'ks' (20), 'e' (20), 'd' (5)"
            ) from None
        if len(ks) != self.L or len(e) != self.L or len(d) != UNITS:
            raise ConfigError(
                f"ofa subnet dict needs {self.L} 'ks', {self.L} 'e' and {UNITS} 'd' values, got "
                f"{len(ks)}, {len(e)} and {len(d)}"
            )
        tokens = np.zeros(self.L, dtype=TOKEN_DTYPE)
        for u, depth in enumerate(d):
            if depth not in DEPTHS:
                raise ConfigError(f"unit {u} depth {depth!r} is not allowed; allowed: {list(DEPTHS)}")
            for j in range(depth):
                p = MAX_DEPTH * u + j
                tokens[p] = token_of(ks[p], e[p])
        return tokens

    def from_net_config(self, config: str | dict) -> np.ndarray:
        """Tokens of an OFA MobileNetV3 `net.config` (a path, a folder holding one, or the
        parsed dict): the blocks after the first are grouped into units where the output
        channels change."""
        source = config
        if isinstance(config, (str, os.PathLike)):
            path = os.path.join(config, "net.config") if os.path.isdir(config) else config
            with open(path) as f:
                config = json.load(f)
            source = path
        if not isinstance(config, dict) or config.get("name") != "MobileNetV3":
            name = config.get("name") if isinstance(config, dict) else type(config).__name__
            raise ConfigError(
                f"{source}: a {name!r} net.config is not in the MobileNet-like space; allowed: "
                f"'MobileNetV3' configs (OFA's ProxylessNAS-space networks have other units)"
            )
        units: list[list[int]] = []
        last_channels = None
        for block in config["blocks"][1:]:
            conv = block["mobile_inverted_conv"]
            if conv["out_channels"] != last_channels:
                units.append([])
                last_channels = conv["out_channels"]
            units[-1].append(token_of(conv["kernel_size"], conv["expand_ratio"]))
        if len(units) != UNITS or not all(min(DEPTHS) <= len(u) <= MAX_DEPTH for u in units):
            raise ConfigError(
                f"{source}: blocks form units of depths {[len(u) for u in units]}; expected "
                f"{UNITS} units of depth {min(DEPTHS)}..{MAX_DEPTH}"
            )
        tokens = np.zeros(self.L, dtype=TOKEN_DTYPE)
        for u, layers in enumerate(units):
            tokens[MAX_DEPTH * u : MAX_DEPTH * u + len(layers)] = layers
        return self.validate(tokens)

    def parse_any(self, text: str) -> np.ndarray:
        """A 20-token string, or a path to an OFA `net.config` (or its folder)."""
        if os.path.exists(text):
            return self.from_net_config(text)
        return self.parse(text)


@functools.lru_cache(maxsize=4)
def _flops_model(width_mult: float):
    from ofa.imagenet_classification.elastic_nn.networks import OFAMobileNetV3
    from ofa.nas.efficiency_predictor import Mbv3FLOPsModel

    net = OFAMobileNetV3(
        ks_list=list(KERNELS), expand_ratio_list=list(EXPANDS), depth_list=list(DEPTHS),
        width_mult=width_mult,
    )
    return Mbv3FLOPsModel(net)


def macs_m(arch: dict, resolution: int, width_mult: float = 1.2) -> float:
    """MACs in millions of an `ofa` subnet dict at `resolution` x `resolution`, from `ofa`'s
    analytic MobileNetV3 model of the `width_mult` supernet (equal to its profiler's count)."""
    if not (isinstance(resolution, int) and resolution > 0):
        raise ConfigError(f"resolution must be a positive integer, got {resolution!r}")
    model = _flops_model(check_width(width_mult))
    return float(model.get_efficiency({**arch, "image_size": resolution}))
