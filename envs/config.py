"""Settings of one DSM-NAS search environment: one dataclass, defaults in one place.

Each field's `help` is also the CLI's help. `EnvConfig.from_dict` rejects unknown keys, and
`validate` raises ValueError naming the bad value and what is allowed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

REWARDS = ("improvement", "absolute")


def _f(default, help: str, **kw):
    return field(default=default, metadata={"help": help}, **kw)


@dataclass(frozen=True)
class EnvConfig:
    space: str = _f("nb201", "search space")
    dataset: str = _f("cifar10", "dataset whose validation accuracy is the reward")
    table: str | None = _f(
        None, "NAS-Bench-201 table (CSV/CSV.gz) or official file; default: embedded data"
    )
    K: int = _f(4, "number of candidate subspaces (graph nodes)")
    M: int = _f(4, "local search distance: (position, op) edits per step")
    budget_s: float | None = _f(
        None, "simulated search-time budget in seconds (default: the data source's)"
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
