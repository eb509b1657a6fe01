"""What the baseline searchers share: a query log over the benchmark, settings, seeding.

Every searcher in this package spends the budget of the same benchmark and `BudgetClock` as
DSM-NAS, built from an `EnvConfig` exactly as `DSMNASEnv` builds it. `QueryLog` wraps that
benchmark: `query` charges the clock, records one history row per answered query and tracks
the best architecture by validation accuracy; it returns None when the clock refuses (the
query would cross the budget, nothing is charged), and the search then ends, as the env's
episode does. `result` builds the `SearchResult`; test accuracy (`benchmark.report`) is looked
up only there, for the report.
"""

from __future__ import annotations

import dataclasses
import heapq
import math
import time
from typing import Any, Callable

import numpy as np
import pandas as pd

from dsmnas.envs import EnvConfig, QueryRecord, history_frame
from dsmnas.envs.benchmarks import Benchmark, make_benchmark
from dsmnas.envs.benchmarks.base import progress_text
from dsmnas.envs.objectives import within_limits
from dsmnas.trainables.live import SearchState, active, clock_spent
from dsmnas.envs.registry import get_space
from dsmnas.envs.settings import parse_settings  # noqa: F401  (re-exported)
from dsmnas.trainables.search import SearchResult, best_visited
from dsmnas.envs.errors import ConfigError

Progress = Callable[[str], None] | None
_RECORD_FIELDS = ("subspace", "reward", "accepted")


def make_rng(seed: int | None, stream: int = 0) -> np.random.Generator:
    """The numpy Generator of `seed` for one use (`stream`): distinct streams of one seed are
    independent, and none equals the env's own `np_random` (which is seeded from `seed`
    alone). `seed=None` gives fresh entropy."""
    return np.random.default_rng(None if seed is None else [seed, stream])


class QueryLog:
    """The benchmark of one search, its history and its best answer.

    `benchmark` replaces the one `env_config` describes (tests use hand-made ones).
    `settings` (a dataclass) goes into `result.config["settings"]`.
    """

    def __init__(
        self,
        env_config: EnvConfig,
        method: str,
        settings: Any = None,
        progress: Progress = None,
        benchmark: Benchmark | None = None,
        progress_every_s: float = 2.0,
    ):
        t0 = time.perf_counter()
        cfg = env_config
        self.space = get_space(cfg.space) if benchmark is None else benchmark.space
        cfg.validate(self.space.L)
        self.benchmark = benchmark or make_benchmark(cfg)
        self.env_config = cfg
        self.method = method
        self.settings = settings
        self.rows: list[QueryRecord] = []
        self.best_tokens: np.ndarray | None = None
        self.best_val = -math.inf
        self._progress = progress
        self._every_s = progress_every_s
        self._live = active()
        self.startup_s = time.perf_counter() - t0
        self.start = self._last_print = time.perf_counter()

    @property
    def clock(self):
        return self.benchmark.clock

    @property
    def budget_s(self) -> float:
        return self.clock.budget_s

    def query(self, tokens: np.ndarray, **columns) -> float | None:
        """Charge and answer a query: its validation accuracy, or None when the clock refuses
        it. `columns` are extra history columns of this row (e.g. `parent`)."""
        if self.clock.workers > 1:  # the query's worker and times (Benchmark.query_batch)
            (answer,) = self.benchmark.query_batch([tokens])
            if answer is None:
                return None
            q, (worker, start, end) = answer
            self.record(tokens, q.val_acc, q.cost_s, end_s=end, worker=worker,
                        start_s=start, **columns)
            return q.val_acc
        q = self.benchmark.query(tokens)
        if q is None:
            return None
        self.record(tokens, q.val_acc, q.cost_s, **columns)
        return q.val_acc

    @property
    def last_end_s(self) -> float:
        """When the last recorded query's answer is known (simulated seconds)."""
        return self.rows[-1].sim_time_s

    def record(self, tokens: np.ndarray, val_acc: float, cost_s: float,
               end_s: float | None = None, **columns) -> None:
        """Add the history record of a query already charged to this log's clock; `columns`
        are `QueryRecord`'s subspace / reward / accepted, or the method's own columns.
        `sim_time_s` is when the answer is known: `end_s` when given (parallel workers),
        else the clock after the query."""
        base = {k: columns.pop(k) for k in _RECORD_FIELDS if k in columns}
        self.rows.append(QueryRecord(
            step=len(self.rows), arch=self.space.format(tokens), val_acc=val_acc,
            cost_s=cost_s, sim_time_s=self.clock.sim_time_s if end_s is None else end_s,
            **base,
            metrics=self.benchmark.query_metrics(tokens), extra=tuple(columns.items()),
        ))
        # strict: the first of equal answers wins; an answer must be within the limits
        if val_acc > self.best_val and self.benchmark.feasible(tokens):
            self.best_val, self.best_tokens = val_acc, np.array(tokens)
        if self._live is not None:
            self._live.progress([self.state()])
        now = time.perf_counter()
        if self._progress and now - self._last_print >= self._every_s:
            self._last_print = now
            self._progress(self._line(now - self.start))

    def state(self) -> SearchState:
        """What a live report says of this search (`trainables.live`)."""
        spent, budget = clock_spent(self.clock.state())
        return SearchState(spent, budget, self.best_val, self.rows,
                           objectives=self.benchmark.objectives, limits=self.benchmark.limits)

    def run_async(self, ask: Callable[[], tuple[np.ndarray, dict[str, Any]]],
                  tell: Callable[[int, np.ndarray, float], None]) -> None:
        """Search asynchronously over the clock's workers until the clock refuses a query.

        Each time a worker frees (`clock.next_start_s`), the results of every query finished
        by then are given to `tell(step, tokens, val_acc)`, in the order they finished (ties:
        the order asked), and then `ask()` proposes the next query, (tokens, its history
        columns), which that worker runs. So a proposal knows exactly the results a real
        asynchronous search would have had when it was made. With one worker this is the
        sequential loop: tell the last result, ask the next.
        """
        pending: list[tuple[float, int, np.ndarray, float]] = []  # (end, step, tokens, val)
        while True:
            now = self.clock.next_start_s
            while pending and pending[0][0] <= now:
                _, step, tokens, val = heapq.heappop(pending)
                tell(step, tokens, val)
            tokens, columns = ask()
            val = self.query(tokens, **columns)
            if val is None:
                return
            heapq.heappush(pending, (self.last_end_s, len(self.rows) - 1, tokens, val))

    def objective_point(self, step: int) -> tuple[np.ndarray, bool]:
        """Query `step`'s objectives (with `--objectives`) as minimised, normalised values
        (`Objectives.normalise`: 0 best, 1 worst in each), and whether it is within the
        limits; from its history record, so a noisy answer counts as it was answered."""
        row = self.rows[step]
        metrics = dict(row.metrics)  # the objectives' and the limits' metrics are recorded
        objectives = self.benchmark.objectives
        feasible = within_limits(metrics, self.benchmark.limits)
        return objectives.normalise(objectives.raw(row.val_acc, metrics))[0], feasible

    def mark_accepted(self, step: int) -> None:
        """Set the `accepted` field of the record of query `step` (local search's moves, the
        Pareto local search's archive entries)."""
        self.rows[step] = dataclasses.replace(self.rows[step], accepted=True)

    def history(self) -> pd.DataFrame:
        """One row per answered query (`envs.records.history_frame`): NaN where a column
        does not apply to the method, then the method's own columns."""
        return history_frame(self.rows, self.benchmark.history_metrics)

    def result(
        self,
        answer: tuple[np.ndarray, float] | None = None,
        final_centers: list[str] | None = None,
        startup_s: float | None = None,
        **config,
    ) -> SearchResult:
        """The `SearchResult`: `answer` (tokens, val_acc) defaults to the best query;
        `config` entries are added to `result.config` (keys as `run_search`'s)."""
        wall_s = time.perf_counter() - self.start
        if self._live is not None:
            self._live.last = ([dataclasses.replace(self.state(), done=True)], None)
        if answer is None:
            if self.best_tokens is None:
                raise ConfigError(
                    f"{self.method}: the budget ({progress_text(self.clock.state())}) paid "
                    f"for no query at all"
                )
            answer = (self.best_tokens, self.best_val)
        tokens, val = answer
        test = self.benchmark.report(tokens)
        state = self.clock.state()
        settings = self.settings
        if dataclasses.is_dataclass(settings):
            settings = dataclasses.asdict(settings)
        history = self.history()
        front = figures = None
        if self.benchmark.objectives is not None:
            from dsmnas.envs.objectives import search_front

            front, figures = search_front(history, self.benchmark)
        result = SearchResult(
            arch=self.space.format(tokens),
            val_acc=float(val),
            queries=state["queries"],
            sim_time_s=state["sim_time_s"],
            wall_time_s=wall_s,
            startup_s=self.startup_s if startup_s is None else startup_s,
            seed=self.env_config.seed,
            history=history,
            test_acc=test or None,
            config={
                "env": self.env_config.to_dict(),
                "method": self.method,
                "settings": settings,
                **config,
                "source": self.benchmark.source,
                "val_metric": self.benchmark.val_metric,
                "budget_s": self.budget_s,
                "budget_queries": state["budget_queries"],
                "cache_queries": state["cache_queries"],
            },
            final_centers=final_centers,
            metrics=self.benchmark.answer_metrics(tokens),
            best_visited=best_visited(self.benchmark, self.space, history, tokens, val, test),
            front=front,
            front_figures=figures,
        )
        if self._progress:
            self._progress(self._line(wall_s, val) + "  done")
        return result

    def _line(self, wall_s: float, best_val: float | None = None) -> str:
        best = self.best_val if best_val is None else best_val
        return f"{progress_text(self.clock.state())}  best val {best:.3f}  wall {wall_s:.1f} s"
