"""Settings of one DSM-NAS search environment: one dataclass, defaults in one place.

Each field's `help` is also the CLI's help. `EnvConfig.from_dict` rejects unknown keys, and
`validate` raises ValueError naming the bad value and what is allowed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

REWARDS = ("improvement", "absolute")
EVALUATORS = ("predictor", "supernet", "fitted")
"""Rewards of the MobileNet-like space: OFA's pretrained ImageNet accuracy predictor, a
weight-sharing supernet evaluated on held-out images, or an MLP fitted to supernet scores."""

SPACE_DEFAULTS: dict[str, dict[str, Any]] = {
    "nb201": {"dataset": "cifar10", "K": 4, "M": 4},
    "mobilenet": {
        "K": 10, "M": 3, "evaluator": "predictor", "budget_queries": 10_000,
        "max_macs_m": 600.0, "macs_resolution": 224, "over_limit": "query",
    },
}
"""The paper's settings per space, filled in for fields left at None."""
_MOBILENET_ONLY = (
    "evaluator", "predictor", "checkpoint", "data", "resolution", "width_mult", "max_macs_m",
    "macs_resolution", "over_limit", "evaluator_service",
)
OVER_LIMIT = ("query", "penalty")


def _f(default, help: str, **kw):
    return field(default=default, metadata={"help": help}, **kw)


@dataclass(frozen=True)
class EnvConfig:
    space: str = _f("nb201", "search space: nb201 or mobilenet")
    dataset: str | None = _f(
        None, "dataset whose validation accuracy is the reward (nb201: cifar10; mobilenet: "
        "imagenet for the OFA predictor, the checkpoint's for a supernet)"
    )
    table: str | None = _f(
        None, "NAS-Bench-201 table (CSV/CSV.gz) or official file; default: embedded data"
    )
    K: int | None = _f(None, "number of candidate subspaces (graph nodes; nb201 4, mobilenet 10)")
    M: int | None = _f(None, "local search distance: (position, op) edits per step (nb201 4, mobilenet 3)")
    budget_s: float | None = _f(
        None, "simulated search-time budget in seconds (default: the data source's)"
    )
    budget_queries: int | None = _f(
        None, "budget in charged queries (mobilenet default 10,000, the paper's)"
    )
    seed: int | None = _f(None, "seed of the first reset (initial centers)")
    reward: str = _f("improvement", "reward: 'improvement' R(b|a)=val(b)-val(a), or 'absolute' val(b)")
    update_subspaces: bool = _f(True, "replace a center by a better beta (off: fixed subspaces)")
    init_centers: tuple[str, ...] | None = _f(
        None, "K architecture strings to start from (DSM-NAS+ transfer); default: K random"
    )
    cache_queries: bool = _f(False, "repeated queries are free (default: every query is charged)")
    charge_init: bool = _f(
        False, "charge the K initial centers' queries to the budget (official code: not charged)"
    )
    evaluator: str | None = _f(None, f"mobilenet reward: {', '.join(EVALUATORS)} (default predictor)")
    predictor: str | None = _f(
        None, "predictor file: OFA's acc_predictor.pth (default ~/.torch/acc_predictor.pth) or a "
        "fitted predictor (`dsmnas fit-predictor`)"
    )
    checkpoint: str | None = _f(None, "supernet checkpoint (`dsmnas train-supernet`)")
    data: str | None = _f(None, "images for the supernet evaluator (default: the checkpoint's)")
    resolution: int | None = _f(
        None, "search resolution (predictor default 224; supernet: the checkpoint's)"
    )
    width_mult: float | None = _f(
        None, "OFA supernet width, 1.0 or 1.2 (predictor default 1.2; supernet: the checkpoint's)"
    )
    max_macs_m: float | None = _f(
        None, "a center is replaced only by an architecture within this many million MACs (600)"
    )
    macs_resolution: int | None = _f(None, "resolution at which the MACs limit is counted (224)")
    over_limit: str | None = _f(
        None, "a proposal over the MACs limit: 'query' it (the paper: reward as usual, never "
        "a center) or give it a 'penalty' without a query (dsm-macs); default query"
    )
    evaluator_service: str | None = _f(
        None, "name of running supernet evaluator actors (default: evaluate in-process)"
    )

    def __post_init__(self):
        defaults = SPACE_DEFAULTS.get(self.space, {})
        for name, value in defaults.items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
        if self.space == "mobilenet" and self.dataset is None and self.evaluator == "predictor":
            object.__setattr__(self, "dataset", "imagenet")

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> "EnvConfig":
        values = dict(values or {})
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(
                f"unknown environment setting(s) {unknown}; allowed: {', '.join(sorted(names))}"
            )
        if values.get("init_centers") is not None:
            values["init_centers"] = tuple(values["init_centers"])
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        if d["init_centers"] is not None:
            d["init_centers"] = list(d["init_centers"])
        return d

    def validate(self, L: int) -> None:
        """Check the settings that do not need the data; L is the space's positions."""
        if self.space != "mobilenet":
            given = [n for n in _MOBILENET_ONLY if getattr(self, n) is not None]
            if given:
                raise ValueError(
                    f"setting(s) {given} apply only to the mobilenet space, not {self.space!r}"
                )
        elif self.evaluator not in EVALUATORS:
            raise ValueError(
                f"unknown evaluator {self.evaluator!r}; allowed: {', '.join(EVALUATORS)}"
            )
        elif self.over_limit not in OVER_LIMIT:
            raise ValueError(
                f"unknown over_limit {self.over_limit!r}; allowed: {', '.join(OVER_LIMIT)}"
            )
        if self.budget_queries is not None and not (
            isinstance(self.budget_queries, int) and self.budget_queries >= 1
        ):
            raise ValueError(f"budget_queries must be an integer >= 1, got {self.budget_queries!r}")
        if self.max_macs_m is not None and not self.max_macs_m > 0:
            raise ValueError(f"max_macs_m must be > 0 (million MACs), got {self.max_macs_m!r}")
        if not (isinstance(self.K, int) and self.K >= 1):
            raise ValueError(f"K must be an integer >= 1, got {self.K!r}")
        if not (isinstance(self.M, int) and 1 <= self.M <= L):
            raise ValueError(f"M must be an integer in 1..{L} (L = {L} positions), got {self.M!r}")
        if self.budget_s is not None and not self.budget_s > 0:
            raise ValueError(f"budget_s must be > 0 seconds, got {self.budget_s!r}")
        if self.reward not in REWARDS:
            raise ValueError(f"unknown reward {self.reward!r}; allowed: {', '.join(REWARDS)}")
        if self.init_centers is not None and len(self.init_centers) != self.K:
            raise ValueError(
                f"init_centers has {len(self.init_centers)} architectures; K = {self.K} needed"
            )
