"""The benchmark interface and the budget clock.

A benchmark answers a query for an architecture with the reward metric (a validation
accuracy) and the simulated cost of obtaining it. The `Benchmark` base class keeps the
search's clock and charges every query to it; a benchmark writes only what a query answers
and costs. Test-set metrics are reachable only through `report()`, which searches never call:
they are for the final report of an answer.
"""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from dsmnas.envs.spaces import SearchSpace
from dsmnas.envs.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Metric:
    """A per-architecture metric a benchmark provides (other than the reward)."""

    unit: str
    """What a value is, in words: 'seconds per image', 'million MACs at 224x224'."""
    description: str = ""


@dataclass(frozen=True, slots=True)
class Query:
    """One answered query: the reward metric, what the clock was charged, and whether the
    answer came from the repeat cache (then `cost_s` is 0)."""

    val_acc: float
    cost_s: float
    cached: bool = False


class BudgetClock:
    """Simulated search time and query count, against a budget, over `workers` parallel
    evaluation workers.

    Every query is charged its cost, repeats included (the paper's protocol), unless
    `cache_queries` is on: then a repeat of an architecture already charged is free. A query
    that would cross the budget is refused and nothing is charged. With the cache, a search
    that only repeats itself would never end (a small space, all of it seen): after
    `MAX_REPEATS_IN_A_ROW` free repeats in a row the clock refuses too.

    Workers: N evaluations run at once. A charged query occupies the earliest free worker
    (the lowest index on ties) from the time it frees, `start`, to `start + cost`; simulated
    time (`sim_time_s`) is the makespan, the latest end so far. The budget rule: a query is
    refused when it would end after `budget_s` even on the earliest free worker, i.e. when no
    worker could start it and finish within the budget (the search then ends, as with one
    worker). `last` is the (worker, start, end) of the last charged query; a free repeat
    occupies no worker. A synchronous searcher calls `barrier()` between its batches: every
    worker waits for the slowest. With one worker all of this is the sequential clock:
    start = the previous end, sim_time_s = the sum of the costs.
    """

    MAX_REPEATS_IN_A_ROW = 1000

    def __init__(
        self,
        budget_s: float | None = None,
        budget_queries: int | None = None,
        cache_queries: bool = False,
        workers: int = 1,
    ):
        if budget_s is None and budget_queries is None:
            raise ConfigError("a budget is needed: give budget_s or budget_queries")
        if budget_s is not None and not budget_s > 0:
            raise ConfigError(f"budget_s must be > 0 seconds, got {budget_s!r}")
        if budget_queries is not None and budget_queries < 1:
            raise ConfigError(f"budget_queries must be >= 1, got {budget_queries!r}")
        self.budget_s = None if budget_s is None else float(budget_s)
        self.budget_queries = budget_queries
        self.cache_queries = bool(cache_queries)
        self.set_workers(workers)

    def set_workers(self, workers: int) -> None:
        """Use `workers` parallel workers (and start over: `reset`)."""
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ConfigError(f"workers must be an integer >= 1, got {workers!r}")
        self.workers = workers
        self.reset()

    def reset(self) -> None:
        self.sim_time_s = 0.0
        self.queries = 0
        self.cache_hits = 0
        self._repeats_in_a_row = 0
        self._seen: set[int] = set()
        self._free = [0.0] * self.workers
        """When each worker is next free (simulated seconds)."""
        self.last: tuple[int, float, float] | None = None

    @property
    def next_start_s(self) -> float:
        """When the next charged query would start: the earliest free worker's time."""
        return min(self._free)

    def barrier(self) -> None:
        """Every worker waits until the last one is free (between synchronous batches)."""
        self._free = [max(self._free)] * self.workers

    def charge(self, key: int, cost_s: float) -> tuple[bool, float, bool]:
        """Try to charge a query: (answered, charged cost, from cache)."""
        if self.cache_queries and key in self._seen:
            if self._repeats_in_a_row >= self.MAX_REPEATS_IN_A_ROW:
                return False, 0.0, False
            self.queries += 1
            self.cache_hits += 1
            self._repeats_in_a_row += 1
            return True, 0.0, True
        charged = self.queries - self.cache_hits
        if self.budget_queries is not None and charged >= self.budget_queries:
            return False, 0.0, False
        worker = self._free.index(min(self._free))
        start = self._free[worker]
        end = start + cost_s
        if self.budget_s is not None and end > self.budget_s:
            return False, 0.0, False
        self._free[worker] = end
        self.sim_time_s = max(self.sim_time_s, end)
        self.last = (worker, start, end)
        self.queries += 1
        self._repeats_in_a_row = 0
        if self.cache_queries:
            self._seen.add(key)
        return True, cost_s, False

    def get_state(self) -> dict:
        """Everything that decides the clock's next answers (the budget is configuration)."""
        return {
            "sim_time_s": self.sim_time_s,
            "queries": self.queries,
            "cache_hits": self.cache_hits,
            "repeats_in_a_row": self._repeats_in_a_row,
            "seen": sorted(self._seen),
            **({"free": list(self._free)} if self.workers > 1 else {}),
        }

    def set_state(self, state: dict) -> None:
        """Continue from `get_state()`'s output: the next charges are those the saved clock
        would have made."""
        self.sim_time_s = float(state["sim_time_s"])
        self.queries = int(state["queries"])
        self.cache_hits = int(state["cache_hits"])
        self._repeats_in_a_row = int(state.get("repeats_in_a_row", 0))  # absent before 0.3
        self._seen = set(state["seen"])
        self._free = [float(t) for t in state.get("free", [self.sim_time_s] * self.workers)]
        if len(self._free) != self.workers:
            raise ConfigError(f"the saved clock had {len(self._free)} workers, this one has "
                              f"{self.workers}")

    def state(self) -> dict:
        return {
            "sim_time_s": self.sim_time_s,
            "queries": self.queries,
            "cache_hits": self.cache_hits,
            "budget_s": self.budget_s,
            "budget_queries": self.budget_queries,
            "cache_queries": self.cache_queries,
            "workers": self.workers,
        }


def budget_text(budget_s: float | None, budget_queries: int | None) -> str:
    """'25,000 s simulated', '10,000 queries', or both joined by 'and' when both bind."""
    parts = []
    if budget_s is not None:
        parts.append(f"{budget_s:,.0f} s simulated")
    if budget_queries is not None:
        parts.append(f"{budget_queries:,} queries")
    return " and ".join(parts)


def progress_text(state: dict) -> str:
    """'sim 1,234/25,000 s (5%)  queries   12' or 'queries 1,234/10,000 (12%)' from a
    `BudgetClock.state()`: the budget's part used, for progress lines."""
    if state["budget_s"] is not None:
        used, budget = state["sim_time_s"], state["budget_s"]
        return (f"sim {used:,.0f}/{budget:,.0f} s ({100 * used / budget:3.0f}%)  "
                f"queries {state['queries']:4d}")
    used, budget = state["queries"] - state["cache_hits"], state["budget_queries"]
    return f"queries {used:,}/{budget:,} ({100 * used / budget:3.0f}%)"


class Benchmark(abc.ABC):
    """Scores architectures of `space` on `dataset`, and keeps the search's budget clock.

    The base class owns the clock: `start_clock` builds it from the settings, and the public
    `query` / `query_batch` charge it and refuse queries over the budget. A benchmark writes
    only what a query answers and costs:

    - `_val(tokens)`: the reward metric (a validation accuracy);
    - `cost_s(tokens)`: the simulated seconds a charged query costs (0 under a query budget);
    - `report(tokens)`: test accuracy, for reports only;
    - the attributes `space`, `dataset`, `source`, `val_metric` (and `acc_scale`,
      `default_budget`, `metrics`, `recorded_metrics` where they differ from the defaults).

    Three hooks, for the rare benchmark that needs them: `_answers` (answers that come
    cheaper together, as the MobileNet-like space's scorers, or that depend on how the query
    was charged, as FCNet's seed draws), `_make_clock` (a clock that keeps more state, as
    FCNet's `SeedDrawClock`) and `_key` (the clock's id of an architecture, default
    `space.key`).
    """

    space: SearchSpace
    dataset: str
    source: str
    """Where the numbers come from, for results files (e.g. 'table:/path/nb201.csv.gz')."""
    val_metric: str
    """Name of the reward metric (e.g. 'val_acc_12ep')."""
    acc_scale: float = 100.0
    """Accuracies are in [0, acc_scale] (NAS-Bench-201 reports percent)."""
    default_budget: float | None = None
    """The budget when the settings give none, counted as the space's `SpaceSpec.budget` says
    (simulated seconds or charged queries); NAS-Bench-201's depends on its data. None: the
    settings always give one (the spec's `env_defaults` or `complete`)."""

    # -- the budget clock ------------------------------------------------------------------
    def start_clock(self, settings) -> BudgetClock:
        """Build the search's clock from `settings` (an `EnvConfig`): the budget in the unit
        of its space's spec (`budget_s` or `budget_queries`, else `default_budget`),
        `cache_queries` and `workers`; return it. `make_benchmark` calls this."""
        seconds = settings.spec.budget == "seconds"
        budget = settings.budget_s if seconds else settings.budget_queries
        if budget is None:
            budget = self.default_budget
        self._clock = self._make_clock(
            budget_s=budget if seconds else None, budget_queries=None if seconds else budget,
            cache_queries=settings.cache_queries, workers=settings.workers,
        )
        return self._clock

    @property
    def clock(self) -> BudgetClock:
        """The search's `BudgetClock` (built by `start_clock`)."""
        try:
            return self._clock
        except AttributeError:
            raise RuntimeError(f"{type(self).__name__} has no clock yet: build it with "
                               f"make_benchmark(cfg), or call start_clock(cfg)") from None

    @clock.setter
    def clock(self, _) -> None:
        # a plug-in written for 0.3 built its own clock: say what the contract is now
        raise ConfigError(
            f"{type(self).__name__} sets self.clock: since dsmnas 0.4 the Benchmark base class "
            f"builds and charges the clock; drop the clock and the charging, and write _val "
            f"(the reward metric) and cost_s"
        )

    def _make_clock(self, **settings) -> BudgetClock:
        """The clock `start_clock` builds, from `BudgetClock`'s arguments (a benchmark whose
        answers are state of the search, as FCNet's seed draws, returns a subclass)."""
        return BudgetClock(**settings)

    # -- queries ---------------------------------------------------------------------------
    def query(self, tokens: np.ndarray, charge: bool = True) -> Query | None:
        """Answer a query of `tokens`, charging the clock its cost unless `charge` is False
        (the K initial centers, unless `charge_init`); None when the clock refuses it (it
        would cross the budget: nothing is charged then)."""
        if not charge:
            (val,) = self._answers([tokens], [False], charged=False)
            return Query(float(val), 0.0)
        (answer,) = self.query_batch([tokens])
        return None if answer is None else answer[0]

    def query_batch(self, batch) -> list[tuple[Query, tuple[float, float, float]] | None]:
        """Query every architecture of `batch`, in order, as charged queries that run at once
        on the clock's workers: for each, (its answer, its (worker, start, end) on the
        clock), or None when the clock refused it. A free repeat runs on no worker (NaN) and
        ends when it starts. The answered ones are answered in one `_answers` call (with
        evaluator actors: spread over the actors at once)."""
        clock, charges = self.clock, []
        for tokens in batch:
            start = clock.next_start_s
            answered, cost_s, cached = clock.charge(self._key(tokens), float(self.cost_s(tokens)))
            timing = (math.nan, start, start) if cached else clock.last
            charges.append((answered, cost_s, cached, timing))
        made = [(tokens, c[2]) for tokens, c in zip(batch, charges) if c[0]]
        vals = iter(self._answers([t for t, _ in made], [cached for _, cached in made],
                                  charged=True) if made else ())
        return [(Query(float(next(vals)), cost_s, cached), timing) if answered else None
                for answered, cost_s, cached, timing in charges]

    # -- what a benchmark writes -----------------------------------------------------------
    def _val(self, tokens: np.ndarray) -> float:
        """The reward metric of `tokens` (a validation accuracy): what a query answers."""
        raise NotImplementedError(f"{type(self).__name__} must define _val(tokens), the "
                                  f"reward metric a query answers (or override _answers)")

    def _answers(self, batch: list[np.ndarray], cached: list[bool], charged: bool) -> list[float]:
        """What each query of `batch` answers: `_val` of each. `cached[j]`: query j was a
        free repeat; `charged`: the queries were charged (False: initial centers). Override
        it to score a batch in one call or to answer by how a query was charged."""
        return [self._val(tokens) for tokens in batch]

    def _key(self, tokens: np.ndarray) -> int:
        """The clock's id of `tokens` (repeats, the cache, saved clock states): `space.key`;
        a benchmark whose rows are numbered otherwise may use its row."""
        return self.space.key(tokens)

    @abc.abstractmethod
    def cost_s(self, tokens: np.ndarray) -> float:
        """The simulated cost of evaluating `tokens` (what a charged, uncached query costs)."""

    @abc.abstractmethod
    def report(self, tokens: np.ndarray) -> dict[str, float]:
        """Test accuracy per dataset of an answer, for reports only ({} when the data has
        none). Searches must never call this."""

    # -- per-architecture metrics and limits -------------------------------------------------
    metrics: Mapping[str, Metric] = {}
    """The per-architecture metrics this benchmark provides besides the reward (name ->
    `Metric`), e.g. NAS-Bench-201's latency; any of them can be limited."""
    recorded_metrics: tuple[str, ...] = ()
    """Metrics written to every history row (e.g. the MobileNet-like space's `macs_m`);
    limited metrics are recorded too."""
    limits: Mapping[str, float] = {}
    """Active constraints `metric <= value` (set by `set_limits`)."""

    def metric(self, name: str, tokens: np.ndarray) -> float:
        """The value of metric `name` for `tokens` (a benchmark with metrics overrides it)."""
        raise ConfigError(f"{type(self).__name__} has no metric {name!r}")

    def set_limits(self, limits: Mapping[str, float] | None) -> None:
        """Constrain centers and answers to `metric <= value` for each item; ConfigError
        naming a metric this benchmark does not provide."""
        limits = dict(limits or {})
        unknown = sorted(set(limits) - set(self.metrics))
        if unknown:
            allowed = ", ".join(f"{n} ({m.unit})" for n, m in self.metrics.items()) or "none"
            raise ConfigError(
                f"cannot limit {unknown}: {self.source} provides the metrics {allowed}"
            )
        self.limits = {name: float(v) for name, v in limits.items()}

    objectives = None
    """The search's objectives (`envs.objectives.Objectives`, set by `make_benchmark` from
    `--objectives`), or None: one objective, the reward."""
    objective_scale = None
    """The space's `envs.objectives.ObjectiveScale` for this data (with the objectives)."""

    @property
    def history_metrics(self) -> tuple[str, ...]:
        """The metric columns of this benchmark's histories: recorded, then limited ones,
        then the objectives' (none without --objectives)."""
        objectives = () if self.objectives is None else self.objectives.metrics
        return tuple(dict.fromkeys([*self.recorded_metrics, *self.limits, *objectives]))

    def query_metrics(self, tokens: np.ndarray) -> tuple[tuple[str, float], ...]:
        """(name, value) of `history_metrics` for one query's record."""
        return tuple((name, self.metric(name, tokens)) for name in self.history_metrics)

    def feasible(self, tokens: np.ndarray) -> bool:
        """Whether `tokens` may be a center or an answer: within every limit."""
        return all(self.metric(n, tokens) <= v for n, v in self.limits.items())

    def overshoot(self, tokens: np.ndarray) -> float:
        """The largest relative excess over a limit, max(metric / limit - 1); <= 0 within
        all of them (the `over_limit="penalty"` reward is -100 times it)."""
        return max((self.metric(n, tokens) / v - 1.0 for n, v in self.limits.items()),
                   default=-math.inf)

    def limit_text(self) -> str | None:
        """The limits in words, for messages (None: there are none)."""
        if not self.limits:
            return None
        return " and ".join(
            f"{n} <= {v:g} ({self.metrics[n].unit})" for n, v in self.limits.items()
        )

    def answer_metrics(self, tokens: np.ndarray) -> dict[str, float] | None:
        """Fields that `result.json` adds for an answer: its history metrics and the limits
        (None when there are neither)."""
        if not self.history_metrics:
            return None
        out: dict[str, Any] = dict(self.query_metrics(tokens))
        out.update({f"limit_{n}": v for n, v in self.limits.items()})
        return out

    def sample(self, rng: np.random.Generator, tries: int = 1000) -> np.ndarray:
        """A uniform sample of the space within the limits, redrawn while it is not (checking
        a limit costs no query)."""
        for _ in range(tries):
            tokens = self.space.sample(rng)
            if self.feasible(tokens):
                return tokens
        raise ConfigError(
            f"{tries} random architectures all exceed the limit ({self.limit_text()}): "
            f"raise it"
        )
