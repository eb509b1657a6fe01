"""Live results and checkpoints of searches that run as a Ray Tune trial.

A trial (`trainables.tune_trainable`) makes a `TrialReporter` and makes it `active()` while
its method runs. The search loops ask for it and, when there is one, hand it their state:
- `run_episode_search` (every RLlib agent: dsm and its variants, ppo, appo, ppo-flat,
  dsm-sync, dsm-async) after each `train()`, with the policy's entropy;
- `run_population` (S dsm searches as one batch) after each `train()`, with every member;
- `QueryLog.record` (the baselines: random, evolution, local, reinforce, random-update,
  random-mined, ofa-evolution) after each query.

The reporter calls `tune.report` each time the searches' budget passes the next of
`reports` evenly spaced milestones (default 20 per search), on the budget's own clock:
simulated seconds for a space whose budget is in seconds, charged queries for one whose
budget counts queries (the MobileNet-like space, NAS-Bench-Graph). A report holds
(`PROGRESS_KEYS`; a population's figures are means over its searches):

    budget_spent       simulated seconds or charged queries so far: the time attribute that
                       schedulers compare trials on (`TIME_ATTR`), also `timesteps_total`,
                       TensorBoard's x-axis
    budget_fraction    budget_spent / budget
    best_val_acc       best validation accuracy so far (a feasible answer; the objective of
                       sweeps, `OBJECTIVE`), with best_val_acc_std over the trial's searches
    front_hypervolume  with --objectives only: the validation hypervolume of the feasible
                       queries so far (the front's; `FRONT_OBJECTIVE`, what a sweep with
                       objectives maximises), with front_hypervolume_std
    queries            answered queries so far
    new_centers        centers replaced so far (DSM-NAS's subspace update; 0 for methods
                       without subspaces)
    mean_reward        mean reward of the queries since the last report (NaN without one)
    policy_entropy     the policy's entropy in the last update (NaN without a policy)
    searches_done      searches of the trial that have ended
    report             "progress", or "result" for the final rows (one per search, the
                       fields of runs.csv and the history, as before)

Checkpoints: a DSM-NAS search (REINFORCE on one DSMNAS-v0 env) saves its whole state (the
one `dsmnas search` checkpoints: algorithm, env, RNG states; `trainables.checkpoint`) with
every `checkpoint_reports`-th report, through Tune's checkpoint API. A trial that Tune restarts
(`--retries`, a lost node) restores it from `tune.get_checkpoint()` and ends with the
history, byte for byte, of an uninterrupted search.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import math
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from dsmnas.envs.errors import ConfigError
from dsmnas.envs.settings import setting

TIME_ATTR = "budget_spent"
"""The time attribute of every report: the budget spent, in the budget's own unit."""
OBJECTIVE = "best_val_acc"
"""What a sweep maximises: best validation accuracy so far, mean over the trial's seeds."""
FRONT_OBJECTIVE = "front_hypervolume"
"""What a sweep with --objectives maximises: the validation hypervolume of the feasible
queries so far (the front's), mean over the trial's seeds."""
PROGRESS_KEYS = (TIME_ATTR, "budget_fraction", OBJECTIVE, "best_val_acc_std", "queries",
                 "new_centers", "mean_reward", "policy_entropy", "searches_done", "report")
STATE_FILE = "live.json"
"""The reporter's own state inside a checkpoint."""


@dataclass(frozen=True)
class LiveSettings:
    """How a trial reports while it searches."""

    reports: int = setting(
        20, "progress reports to Tune per search, evenly over its budget (simulated seconds, "
        "or charged queries for a space whose budget counts queries); 0: the final result only")
    checkpoint_reports: int = setting(
        5, "a Tune checkpoint of a DSM-NAS search's whole state every N reports, from which a "
        "restarted trial continues exactly (0: none)")

    def __post_init__(self):
        for name in ("reports", "checkpoint_reports"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ConfigError(f"{name} must be an integer >= 0, got {v!r}")


@dataclass
class SearchState:
    """What a report says of one search (cheap to make: the history is not copied)."""

    spent: float
    budget: float
    best_val: float
    history: Sequence[Any]
    """The search's `QueryRecord`s so far (queries, accepted, reward)."""
    done: bool = False
    objectives: Any = None
    """With --objectives: the search's `envs.objectives.Objectives` (then a report has the
    hypervolume so far), with the benchmark's `limits`."""
    limits: Any = None


def objective(objectives: Any) -> str:
    """The report key a sweep maximises: `FRONT_OBJECTIVE` with objectives, else
    `OBJECTIVE`."""
    return OBJECTIVE if objectives is None else FRONT_OBJECTIVE


def front_hypervolume(state: SearchState) -> float:
    """The validation hypervolume of a search's feasible queries so far (dominated ones add
    nothing: the front's), from its history records."""
    from dsmnas.envs.objectives import within_limits

    objectives, points = state.objectives, []
    for r in state.history:
        metrics = dict(r.metrics)
        if within_limits(metrics, state.limits):
            points.append(objectives.raw(r.val_acc, metrics))
    return objectives.hypervolume(np.array(points).reshape(-1, len(objectives.names)))


def clock_spent(clock_state: dict) -> tuple[float, float]:
    """(spent, budget) of a `BudgetClock.state()`, in its budget's unit (seconds when the
    budget is in seconds, else charged queries)."""
    if clock_state["budget_s"] is not None:
        return float(clock_state["sim_time_s"]), float(clock_state["budget_s"])
    return (float(clock_state["queries"] - clock_state["cache_hits"]),
            float(clock_state["budget_queries"]))


def env_state(env) -> SearchState:
    """A DSMNAS-v0 env's search: the ongoing one, or the finished one once it has ended."""
    done = env.episodes_finished > 0
    if done:
        graph, history, clock = env.last_finished
    else:
        graph, history, clock = env.graph, env.history, env.benchmark.clock.state()
    spent, budget = clock_spent(clock)
    bench = env.benchmark
    return SearchState(spent, budget, float(np.max(graph.val_acc)), history, done,
                       bench.objectives, bench.limits)


class TrialReporter:
    """Reports a trial's searches to Tune at milestones of their budget (module docstring).
    `report` is `tune.report` (tests pass their own)."""

    def __init__(self, settings: LiveSettings = LiveSettings(),
                 report: Callable[..., None] | None = None,
                 row: dict[str, Any] | None = None):
        self.settings = settings
        self._report = report
        self.row = dict(row or {})
        """What every progress report carries besides its figures: the final rows' keys (so
        that Tune's CSV file, whose columns its first row sets, has them), mostly empty."""
        self.reports = 0
        """Progress reports made so far (restored with a checkpoint)."""
        self._rewards_seen: list[int] = []
        self.last: tuple[list[SearchState], float | None] | None = None
        """(searches, entropy) as the search loop left them: the final rows' figures."""
        self.searches = 0
        """Searches of this trial started so far (`restored`): which one a checkpoint is of."""

    # -- when ------------------------------------------------------------------------------
    def due(self, searches: Sequence[SearchState]) -> bool:
        """Whether the searches' mean budget fraction has passed the next milestone."""
        n = self.settings.reports
        if not n or not searches:
            return False
        fraction = float(np.mean([s.spent / s.budget for s in searches]))
        return self.reports < n and fraction >= (self.reports + 1) / n

    def checkpoint_due(self) -> bool:
        """Whether the report about to be made carries a checkpoint."""
        every = self.settings.checkpoint_reports
        return bool(every) and (self.reports + 1) % every == 0

    # -- what ------------------------------------------------------------------------------
    def metrics(self, searches: Sequence[SearchState], entropy: float | None = None,
                kind: str = "progress") -> dict[str, Any]:
        """The figures of one report (`PROGRESS_KEYS`), means over `searches`."""
        if len(self._rewards_seen) != len(searches):
            self._rewards_seen = [0] * len(searches)
        new_rewards = []
        for i, s in enumerate(searches):
            new_rewards += [r.reward for r in s.history[self._rewards_seen[i]:]
                            if r.reward is not None and r.reward == r.reward]
            self._rewards_seen[i] = len(s.history)
        spent = float(np.mean([s.spent for s in searches]))
        best = [s.best_val for s in searches]
        fronts = {}
        if searches and searches[0].objectives is not None:
            hv = [front_hypervolume(s) for s in searches]
            fronts = {FRONT_OBJECTIVE: float(np.mean(hv)),
                      f"{FRONT_OBJECTIVE}_std": float(np.std(hv, ddof=1)) if len(hv) > 1
                      else 0.0}
        return {
            TIME_ATTR: spent,
            "timesteps_total": int(round(spent)),
            "budget_fraction": float(np.mean([s.spent / s.budget for s in searches])),
            OBJECTIVE: float(np.mean(best)),
            "best_val_acc_std": float(np.std(best, ddof=1)) if len(best) > 1 else 0.0,
            "queries": float(np.mean([len(s.history) for s in searches])),
            "new_centers": float(np.mean([sum(bool(r.accepted) for r in s.history)
                                          for s in searches])),
            "mean_reward": float(np.mean(new_rewards)) if new_rewards else math.nan,
            "policy_entropy": math.nan if entropy is None else float(entropy),
            "searches_done": int(sum(s.done for s in searches)),
            **fronts,
            "report": kind,
        }

    def progress(self, searches: Sequence[SearchState], entropy: float | None = None,
                 save: Callable[[Path], None] | None = None) -> bool:
        """Report `searches` if a milestone is due (with a checkpoint that `save(dir)` writes,
        when one is due and `save` is given); whether it reported."""
        if not self.due(searches):
            return False
        metrics = self.metrics(searches, entropy)
        metrics = {**self.row, **metrics}
        if save is not None and self.checkpoint_due():
            from ray import tune

            with tempfile.TemporaryDirectory(prefix="dsmnas-ckpt-") as tmp:
                save(Path(tmp))
                self.reports += 1
                (Path(tmp) / STATE_FILE).write_text(json.dumps(self.get_state()))
                self._send(metrics, checkpoint=tune.Checkpoint.from_directory(tmp))
        else:
            self.reports += 1
            self._send(metrics)
        return True

    def final(self, searches: Sequence[SearchState], rows: Sequence[dict[str, Any]],
              entropy: float | None = None) -> None:
        """The final rows, one per search: each row over the trial's last figures."""
        metrics = self.metrics(searches, entropy, kind="result")
        for row in rows:
            self._send({**metrics, **row})

    def _send(self, metrics: dict[str, Any], checkpoint=None) -> None:
        if self._report is not None:
            self._report(metrics, checkpoint=checkpoint)
            return
        from ray import tune

        tune.report(metrics, checkpoint=checkpoint)

    # -- restore ---------------------------------------------------------------------------
    def get_state(self) -> dict[str, Any]:
        return {"reports": self.reports, "rewards_seen": list(self._rewards_seen),
                "search": self.searches, "settings": asdict(self.settings)}

    def set_state(self, state: dict[str, Any]) -> None:
        self.reports = int(state["reports"])
        self._rewards_seen = [int(n) for n in state.get("rewards_seen", [])]

    @contextlib.contextmanager
    def restored(self) -> Iterator[Path | None]:
        """Called once as each search of the trial starts: the folder of the checkpoint Tune
        restarted this trial from when it was saved by this search (the reporter's own state
        restored from it), else None. A method that runs several searches in one trial
        (dsm-plus: a source, then a target search; random-mined) runs the earlier ones again
        from their seeds and restores the one that saved the checkpoint."""
        from ray import tune

        self.searches += 1
        if self.searches > 1:  # each search of the trial reports its own milestones
            self.reports, self._rewards_seen = 0, []
        checkpoint = tune.get_checkpoint() if self._report is None else None
        if checkpoint is None:
            yield None
            return
        with checkpoint.as_directory() as folder:
            folder = Path(folder)
            state = json.loads((folder / STATE_FILE).read_text())
            if int(state.get("search", 1)) != self.searches:
                yield None
                return
            self.set_state(state)
            yield folder


_ACTIVE: contextvars.ContextVar[TrialReporter | None] = contextvars.ContextVar(
    "dsmnas_trial_reporter", default=None)


def active() -> TrialReporter | None:
    """The reporter of the Tune trial this code runs in, or None outside one."""
    return _ACTIVE.get()


@contextlib.contextmanager
def reporting(reporter: TrialReporter) -> Iterator[TrialReporter]:
    """Make `reporter` the active one for the searches run inside this block."""
    token = _ACTIVE.set(reporter)
    try:
        yield reporter
    finally:
        _ACTIVE.reset(token)
