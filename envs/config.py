"""Settings of one DSM-NAS search environment: one dataclass, defaults in one place.

`EnvConfig` holds the settings every space has (K, M, budget, reward, limits, ...). A space's
own settings (NAS-Bench-201's `table`, the MobileNet-like space's `evaluator`, `checkpoint`,
...) are declared by its `SpaceSpec.settings` dataclass: they are given and read like the
others (`EnvConfig(space="mobilenet", evaluator="supernet")`, `cfg.evaluator`,
`--set env.evaluator=supernet`) and kept in `options`. Defaults a space changes (K = 10 for
mobilenet) come from its `SpaceSpec.env_defaults`, filled in for fields left at None.

Each field's `help` is also the CLI's help. Unknown keys raise `ConfigError` listing the
allowed ones; `validate` raises it naming the bad value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Mapping

from dsmnas.envs.errors import ConfigError
from dsmnas.envs.objectives import objectives_text, parse_objectives
from dsmnas.envs.settings import setting
from dsmnas.envs.registry import SpaceSpec, get_spec, normalize

REWARDS = ("improvement", "absolute")
OVER_LIMIT = ("query", "penalty")
LEGACY_KEYS = (
    "evaluator", "predictor", "checkpoint", "data", "resolution", "width_mult", "max_macs_m",
    "macs_resolution", "evaluator_service", "table",
)
"""Keys of 0.2's flat EnvConfig: a saved config may name them with None for a space that
does not have them (they meant "not set" there)."""



@dataclass(frozen=True, init=False)
class EnvConfig:
    space: str = setting("nb201", "search space: nb201, mobilenet, a plug-in's name, or "
                    "'package.module:SPEC'")
    dataset: str | None = setting(
        None, "dataset whose validation accuracy is the reward (nb201: cifar10; mobilenet: "
        "imagenet for the OFA predictor, the checkpoint's for a supernet)"
    )
    K: int | None = setting(None, "number of candidate subspaces (graph nodes; nb201 4, mobilenet 10)",
                            flag="-K")
    M: int | None = setting(None, "local search distance: (position, op) edits per step (nb201 4, mobilenet 3)",
                            flag="-M")
    budget_s: float | None = setting(
        None, "simulated search-time budget in seconds (default: the data source's)",
        flag="--budget", metavar="SECONDS",
    )
    budget_queries: int | None = setting(
        None, "budget in charged queries (mobilenet default 10,000, the paper's)", metavar="N"
    )
    seed: int | None = setting(None, "seed of the first reset (initial centers)")
    reward: str = setting("improvement", "reward: 'improvement' R(b|a)=val(b)-val(a), or 'absolute' val(b)")
    update_subspaces: bool = setting(True, "replace a center by a better beta (off: fixed subspaces)",
                                     flag="--no-update")
    init_centers: tuple[str, ...] | None = setting(
        None, "K architecture strings to start from (DSM-NAS+ transfer); default: K random",
        flag="--init-from", metavar="ARCH",
    )
    cache_queries: bool = setting(False, "repeated queries are free (default: every query is charged)",
                                  flag="--cache")
    workers: int = setting(
        1, "parallel evaluation workers: N queries run at once, each on the earliest free "
        "worker; simulated time is the makespan (default 1, the paper's protocol)", metavar="N"
    )
    charge_init: bool = setting(
        False, "charge the K initial centers' queries to the budget (official code: not charged)"
    )
    limits: tuple[tuple[str, float], ...] | None = setting(
        None, "metric <= value constraints on centers and answers, e.g. {'latency_s': 0.02} "
        "(any per-architecture metric the benchmark provides; mobilenet: macs_m <= 600); "
        "as a flag METRIC=VALUE, repeatable", flag="--limit", metavar="METRIC=VALUE"
    )
    over_limit: str | None = setting(
        None, "a proposal over a limit: 'query' it (the paper: reward as usual, never a "
        "center) or give it a 'penalty' without a query (dsm-macs); default query"
    )
    objectives: str | tuple[tuple[str, str], ...] | None = setting(
        None, "search 2 or 3 objectives at once, METRIC:max|min comma-separated: val_acc:max "
        "(the reward) and metrics the space serves, e.g. val_acc:max,latency_s:min; the "
        "result is then a front (docs: Several objectives); methods with a multi-objective "
        "form only", metavar="METRIC:DIR,...")
    mo_form: str | None = setting(
        None, "with --objectives, how DSM-NAS scores a proposal: 'tchebycheff' (each center "
        "its own weight vector, reward = the drop of its augmented Tchebycheff value) or "
        "'hypervolume' (reward = the hypervolume the proposal adds to the visited front; "
        "dsm-hv); default tchebycheff")
    options: tuple[tuple[str, Any], ...] = setting(
        (), "the space's own settings (its SpaceSpec.settings), given as plain keys"
    )

    def __init__(self, space: str = "nb201", **values: Any):
        space = normalize(space)
        spec = get_spec(space)
        generic = {f.name for f in dataclasses.fields(EnvConfig)} - {"space", "options"}
        options = dict(values.pop("options", None) or ())
        limits = parse_limits(values.pop("limits", None))
        for alias, metric in spec.limit_aliases.items():
            value = values.pop(alias, None)
            if value is not None:  # None: the space's default limit
                limits = {**(limits or {}), metric: value}
        own = set(spec.option_names)
        for key in [k for k in values if k not in generic]:
            if key in own:
                options[key] = values.pop(key)
            elif key in LEGACY_KEYS and values[key] is None:
                del values[key]
        unknown = sorted(set(values) - generic)
        if unknown:
            allowed = sorted(generic | own | set(spec.limit_aliases) | {"space"})
            raise ConfigError(
                f"unknown environment setting(s) {unknown} for space {spec.name!r}; allowed: "
                f"{', '.join(allowed)}"
            )
        if limits is None and "limits" in spec.env_defaults:
            limits = dict(spec.env_defaults["limits"])
        merged = {f.name: f.default for f in dataclasses.fields(EnvConfig)}
        merged.update(values)
        for name, default in spec.env_defaults.items():
            if name != "limits" and merged.get(name) is None:
                merged[name] = default
        merged.update(space=space, limits=limits, options=spec.options(options))
        if spec.complete is not None:
            view = {**merged, **dict(merged["options"])}
            for name, value in spec.complete(view).items():
                if name in generic and merged.get(name) is None:
                    merged[name] = value
        if merged["init_centers"] is not None:
            merged["init_centers"] = tuple(merged["init_centers"])
        if merged["limits"] is not None:
            merged["limits"] = tuple(sorted(parse_limits(merged["limits"]).items()))
        merged["objectives"] = parse_objectives(merged["objectives"])
        if merged["objectives"] is not None and spec.objectives is None:
            raise ConfigError(f"the {spec.name} space declares no normalisation for "
                              f"--objectives (SpaceSpec.objectives); it cannot search several "
                              f"objectives")
        for name, value in merged.items():
            object.__setattr__(self, name, value)

    def __getattr__(self, name: str) -> Any:
        # only called for names that are not fields: the space's own settings and aliases
        if name.startswith("_"):
            raise AttributeError(name)
        d = self.__dict__
        options = dict(d.get("options", ()))
        if name in options:
            return options[name]
        if "space" in d:
            metric = self.spec.limit_aliases.get(name)
            if metric is not None:
                return self.limit(metric)
        raise AttributeError(
            f"{type(self).__name__} of space {d.get('space')!r} has no setting {name!r}"
        )

    @property
    def spec(self) -> SpaceSpec:
        return get_spec(self.space)

    def limit(self, metric: str) -> float | None:
        """The limit on `metric`, or None."""
        return dict(self.limits or ()).get(metric)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> "EnvConfig":
        values = dict(values or {})
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON-able): the common fields, then the space's own settings flat."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "options"}
        if d["init_centers"] is not None:
            d["init_centers"] = list(d["init_centers"])
        if d["limits"] is not None:
            d["limits"] = dict(d["limits"])
        if d["objectives"] is None:  # absent: configs of single-objective searches as before
            del d["objectives"]
        else:
            d["objectives"] = objectives_text(d["objectives"])
        if d["mo_form"] is None:
            del d["mo_form"]
        d.update(self.options)
        return d

    def validate(self, L: int) -> None:
        """Check the settings that do not need the data; L is the space's positions."""
        spec = self.spec
        if spec.budget == "queries" and self.budget_s is not None:
            raise ConfigError(
                f"the {spec.name} space counts its budget in queries: use budget_queries, not "
                f"budget_s={self.budget_s!r}"
            )
        if spec.budget == "seconds" and self.budget_queries is not None:
            raise ConfigError(
                f"the {spec.name} space counts its budget in simulated seconds: use budget_s, "
                f"not budget_queries={self.budget_queries!r}"
            )
        if self.budget_queries is not None and not (
            isinstance(self.budget_queries, int) and not isinstance(self.budget_queries, bool)
            and self.budget_queries >= 1
        ):
            raise ConfigError(f"budget_queries must be an integer >= 1, got {self.budget_queries!r}")
        if self.over_limit is not None and self.over_limit not in OVER_LIMIT:
            raise ConfigError(
                f"unknown over_limit {self.over_limit!r}; allowed: {', '.join(OVER_LIMIT)}"
            )
        if self.mo_form is not None:
            from dsmnas.envs.objectives import MO_FORMS

            if self.mo_form not in MO_FORMS:
                raise ConfigError(f"unknown mo_form {self.mo_form!r}; allowed: "
                                  f"{', '.join(MO_FORMS)}")
            if self.objectives is None:
                raise ConfigError(f"mo_form={self.mo_form!r} scores several objectives: pass "
                                  f"--objectives too (e.g. val_acc:max,latency_s:min)")
        if self.over_limit == "penalty" and not self.limits:
            raise ConfigError("over_limit='penalty' needs a limit (e.g. --limit latency_s=0.02)")
        for metric, value in self.limits or ():
            if not (isinstance(value, (int, float)) and not isinstance(value, bool)
                    and math.isfinite(value) and value > 0):
                raise ConfigError(f"limit {metric} <= {value!r}: the limit must be a number > 0")
        if not (isinstance(self.K, int) and not isinstance(self.K, bool) and self.K >= 1):
            raise ConfigError(f"K must be an integer >= 1, got {self.K!r}")
        if not (isinstance(self.M, int) and not isinstance(self.M, bool) and 1 <= self.M <= L):
            raise ConfigError(f"M must be an integer in 1..{L} (L = {L} positions), got {self.M!r}")
        if self.budget_s is not None and not (
            isinstance(self.budget_s, (int, float)) and not isinstance(self.budget_s, bool)
            and self.budget_s > 0
        ):
            raise ConfigError(f"budget_s must be > 0 seconds, got {self.budget_s!r}")
        if self.seed is not None and not (
            isinstance(self.seed, int) and not isinstance(self.seed, bool) and self.seed >= 0
        ):
            raise ConfigError(f"seed must be an integer >= 0, got {self.seed!r}")
        if self.reward not in REWARDS:
            raise ConfigError(f"unknown reward {self.reward!r}; allowed: {', '.join(REWARDS)}")
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 1:
            raise ConfigError(f"workers must be an integer >= 1, got {self.workers!r}")
        for name in ("update_subspaces", "cache_queries", "charge_init"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if self.init_centers is not None and len(self.init_centers) != self.K:
            raise ConfigError(
                f"init_centers has {len(self.init_centers)} architectures; K = {self.K} needed"
            )


def parse_limits(limits) -> dict[str, float] | None:
    """Limits given as a mapping, (metric, value) pairs, or 'metric=value' strings."""
    if limits is None:
        return None
    if isinstance(limits, Mapping):
        items = list(limits.items())
    elif isinstance(limits, str):
        items = [limits]
    else:
        items = list(limits)
    out: dict[str, float] = {}
    for item in items:
        if isinstance(item, str):
            metric, eq, value = item.partition("=")
            if not eq:
                raise ConfigError(f"a limit is METRIC=VALUE (e.g. latency_s=0.02), got {item!r}")
            try:
                out[metric.strip()] = float(value)
            except ValueError:
                raise ConfigError(f"limit {item!r}: {value!r} is not a number") from None
        else:
            metric, value = item
            out[str(metric)] = value
    return out
