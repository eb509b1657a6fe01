"""A sweep whose configurations a Tune search algorithm draws (`--search-alg optuna|hyperopt`).

`dsmnas sweep` fixes grid and random configurations before Ray starts (`experiments.sweep`).
With a search algorithm each trial's configuration is drawn as the sweep runs, from the
results of the trials that ended before it:

- `SearcherTrials` is what `experiments.compare.run_compare` is given instead of its grid of
  runs: Tune's search space (`tune.choice` for K, M and listed values, `tune.loguniform` for a
  `LOW..HIGH` range), the search algorithm, the number of trials, and how a trial's config
  names its runs (the label of its `settings.Config` and all the sweep's seeds);
- `sweep_trainable` turns a drawn configuration into the config `search_trainable` takes: one
  trial runs all the sweep's seeds as one population, and reports their mean best validation
  accuracy so far (`trainables.live.OBJECTIVE`; with --objectives their mean validation
  hypervolume so far, `FRONT_OBJECTIVE`), which the searcher maximises (never test figures);
- `Distinct` wraps the searcher so that no configuration runs twice: a suggestion that repeats
  one already run is answered with that run's result (the searcher learns it again and draws
  anew), one that repeats a running trial is answered as failed. A TPE sampler may suggest
  a configuration of a finite grid again; 100 repeats in a row end the sweep early (said in
  the log).

Samplers: Optuna's `TPESampler(seed=draw_seed)`, HyperOpt's TPE with
`random_state_seed=draw_seed`. What they draw depends on the order trials end, so a sweep is
reproducible run to run only with `--max-concurrent 1`. Imports Ray (a sweep imports this
module only when it runs a searcher); the searcher's package when one is made.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Sequence

from ray.tune.search import Searcher

from dsmnas.experiments.settings import RANGED, Config, LogUniform, MethodSpec, rounded
from dsmnas.trainables.live import LiveSettings, objective

if TYPE_CHECKING:
    from dsmnas.experiments.sweep import SweepPlan

REDRAWS = 100
"""Suggestions in a row that repeat a configuration already run, before the sweep ends."""


def config_of(config: dict[str, Any], ranged: Sequence[str] | None = None) -> Config:
    """The swept configuration of a trial's config, or of a searcher's suggestion with the
    names of the `ranged` parameters (values drawn from a range rounded to `settings.DIGITS`
    significant digits: what the search runs and its label says)."""
    ranged = config["sweep"]["ranges"] if ranged is None else ranged

    def value(key: str) -> float | None:
        v = config.get(key)
        return None if v is None else rounded(v) if key in ranged else float(v)

    return Config(int(config["K"]), int(config["M"]), value("entropy"), value("lr"))


def run_of(config: dict[str, Any]) -> tuple[str, list[int]]:
    """(label, seeds) of a trial's config."""
    return config_of(config).label, [int(s) for s in config["sweep"]["seeds"]]


def sweep_trainable(config: dict[str, Any]) -> None:
    """One drawn configuration, all the sweep's seeds as one population: `search_trainable`'s
    config built from it."""
    from dsmnas.trainables.tune_trainable import search_trainable

    c = config_of(config)
    sweep = config["sweep"]
    seeds = [int(s) for s in sweep["seeds"]]
    search_trainable({
        "label": c.label, "method": "dsm", "seeds": seeds, "seed": seeds[0],
        "settings": {**sweep["dsm"], **c.settings}, "env_overrides": {"K": c.K, "M": c.M},
        "env": {**sweep["env"], "seed": seeds[0]}, "live": sweep["live"],
        "columns": sweep["columns"],
    })


def _domain(values: Sequence | LogUniform):
    from ray import tune

    if isinstance(values, LogUniform):
        return tune.loguniform(values.low, values.high)
    return tune.choice(list(values))


def _label(config: dict[str, Any], ranged: Sequence[str]) -> str:
    return config_of(config, ranged).label


def make_searcher(name: str, seed: int, ranged: Sequence[str] = (), limit: int | None = None,
                  printer: Callable[[str], None] = print, metric: str = objective(None)):
    """Tune's searcher `name` ("optuna": TPE; "hyperopt": TPE), seeded, maximising `metric`,
    the trial's mean best validation accuracy (with --objectives, its mean validation
    hypervolume: `trainables.live.objective`), wrapped in `Distinct` (`ranged`: the
    parameters drawn from a range)."""
    if name == "optuna":
        import optuna
        from ray.tune.search.optuna import OptunaSearch

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        inner = OptunaSearch(metric=metric, mode="max",
                             sampler=optuna.samplers.TPESampler(seed=seed))
    elif name == "hyperopt":
        from ray.tune.search.hyperopt import HyperOptSearch

        inner = HyperOptSearch(metric=metric, mode="max", random_state_seed=seed)
    else:
        raise ValueError(f"unknown search algorithm {name!r}")
    return Distinct(inner, key=functools.partial(_label, ranged=tuple(ranged)), limit=limit,
                    printer=printer)


class Distinct(Searcher):
    """`searcher` that never hands out a configuration twice (module docstring); `key` names a
    configuration, `limit` is how many distinct ones the space has (None: unbounded)."""

    def __init__(self, searcher: Searcher, key: Callable[[dict], str],
                 limit: int | None = None, printer: Callable[[str], None] = print):
        super().__init__(metric=searcher.metric, mode=searcher.mode)
        self.searcher, self.key, self.limit, self.printer = searcher, key, limit, printer
        self.results: dict[str, dict | None] = {}
        """Configurations handed out: their final result, None while running."""
        self.inner: dict[str, tuple[str, str]] = {}
        """Tune's trial id -> (the searcher's trial id, configuration key)."""
        self.ended = False

    def set_search_properties(self, metric, mode, config, **spec):
        return self.searcher.set_search_properties(metric, mode, config, **spec)

    def suggest(self, trial_id):
        if self.ended or (self.limit is not None and len(self.results) >= self.limit):
            return Searcher.FINISHED
        for attempt in range(REDRAWS):
            inner_id = f"{trial_id}-{attempt}"
            config = self.searcher.suggest(inner_id)
            if config is None or config == Searcher.FINISHED:
                return config
            name = self.key(config)
            if name not in self.results:
                self.results[name] = None
                self.inner[trial_id] = (inner_id, name)
                return config
            done = self.results[name]
            self.searcher.on_trial_complete(inner_id, result=done, error=done is None)
        self.ended = True
        self.printer(f"    the search algorithm drew {REDRAWS} configurations in a row that "
                     f"had already run: the sweep ends after {len(self.results)}")
        return Searcher.FINISHED

    def on_trial_result(self, trial_id, result):
        if trial_id in self.inner:
            self.searcher.on_trial_result(self.inner[trial_id][0], result)

    def on_trial_complete(self, trial_id, result=None, error=False):
        if trial_id not in self.inner:
            return
        inner_id, name = self.inner.pop(trial_id)
        if error or not result:
            self.results.pop(name, None)  # a failed configuration may be drawn again
        else:  # what the searcher reads of a result: its objective
            self.results[name] = {self.metric: result.get(self.metric)}
        self.searcher.on_trial_complete(inner_id, result=result, error=error)

    # Tune saves a wrapper's state with the experiment (the wrapped searcher saves its own)
    def get_state(self) -> dict:
        return {"results": dict(self.results), "inner": dict(self.inner), "ended": self.ended}

    def set_state(self, state: dict) -> None:
        self.results, self.inner = dict(state["results"]), dict(state["inner"])
        self.ended = bool(state["ended"])


@dataclass
class SearcherTrials:
    """The trials of a sweep whose search algorithm draws the configurations (module
    docstring): what `run_compare(..., trials=)` runs instead of its plan's grid."""

    plan: "SweepPlan"
    drawn: tuple[Config, ...] = ()
    """The configurations the sweep ran, in the order their trials were made (`record`)."""

    def record(self, grid) -> tuple[MethodSpec, ...]:
        """Keep the configurations of Tune's results `grid`; their methods, as a sweep's
        plan has them."""
        self.drawn = tuple(dict.fromkeys(config_of(r.config) for r in grid if r.config))
        return tuple(MethodSpec(c.label, "dsm", settings={**self.plan.dsm, **c.settings},
                                env={"K": c.K, "M": c.M}) for c in self.drawn)

    @property
    def num_samples(self) -> int:
        return self.plan.settings.num_samples

    @property
    def total_runs(self) -> int:
        return self.num_samples * len(self.plan.compare.seeds)

    @property
    def trainable(self) -> Callable[[dict], None]:
        return sweep_trainable

    @staticmethod
    def run_of(config: dict[str, Any]) -> tuple[str, list[int]]:
        return run_of(config)

    def param_space(self, live: LiveSettings) -> dict[str, Any]:
        s, c = self.plan.settings, self.plan.compare
        space = {"K": _domain(s.K), "M": _domain(s.M), "entropy": _domain(s.entropy)}
        if s.lr:
            space["lr"] = _domain(s.lr)
        space["sweep"] = {
            "seeds": list(c.seeds), "env": c.env.to_dict(), "dsm": dict(self.plan.dsm),
            "live": dataclasses.asdict(live), "columns": list(c.columns),
            "ranges": [k for k in RANGED if isinstance(getattr(s, k), LogUniform)],
        }
        return space

    def search_alg(self, printer: Callable[[str], None] = print):
        s = self.plan.settings
        ranged = [k for k in RANGED if isinstance(getattr(s, k), LogUniform)]
        size = None if ranged else len(s.K) * len(s.M) * len(s.entropy) * max(1, len(s.lr))
        return make_searcher(s.search_alg, s.draw_seed, ranged, limit=size, printer=printer,
                             metric=objective(self.plan.compare.objectives))

    def identity(self) -> dict[str, Any]:
        """What plan.json records of the search."""
        s = self.plan.settings
        return {"search_alg": s.search_alg, "num_samples": s.num_samples,
                "draw_seed": s.draw_seed, "scheduler": s.scheduler,
                **{k: str(v) if isinstance(v, LogUniform) else list(v)
                   for k, v in (("K", s.K), ("M", s.M), ("entropy", s.entropy),
                                ("lr", s.lr))}}
