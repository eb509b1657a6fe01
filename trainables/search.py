"""One complete search: one episode of DSMNAS-v0, the agent trained online during it.

`run_episode_search` takes any RLlib `AlgorithmConfig` whose env is DSMNAS-v0 with one
in-process env (`num_env_runners=0`, one env per runner), calls `train()` until the env
reports its first finished episode, and returns the answer: the best center of the final
graph by validation accuracy. Test accuracy is looked up afterwards, for the report only.
`run_search` is that loop with DSM-NAS's own algorithm (REINFORCE, one env step = one
architecture query and one policy update at batch size 1).
"""

from __future__ import annotations

import dataclasses

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from dsmnas.envs import DSMNASEnv, EnvConfig, history_frame
from dsmnas.envs.benchmarks.base import progress_text
from dsmnas.envs.errors import ConfigError
from dsmnas.envs.workers import SYNC_ENV_ID
from dsmnas.trainables.live import env_state
from dsmnas.trainables.learner import LearnerSettings
from dsmnas.trainables.ray_utils import build_algo

if TYPE_CHECKING:
    import pandas as pd



def learner_for_space(space: str, learner: LearnerSettings, given=()) -> LearnerSettings:
    """`learner` with the space's own defaults (its `SpaceSpec.learner_defaults`, e.g. the
    paper's lr 3e-4 for mobilenet) for the fields not in `given` (names set by the user)."""
    from dsmnas.envs.registry import get_spec

    defaults = {k: v for k, v in get_spec(space).learner_defaults.items() if k not in given}
    return dataclasses.replace(learner, **defaults)


FRONT_FILE = "front.csv"
"""A multi-objective search's front, beside result.json and history.csv."""


@dataclass
class SearchResult:
    arch: str
    val_acc: float
    queries: int
    sim_time_s: float
    wall_time_s: float
    startup_s: float
    seed: int | None
    history: pd.DataFrame
    test_acc: dict[str, float] | None = None
    config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] | None = None
    """The answer's per-architecture metrics and the limits, from the benchmark's
    `answer_metrics` (None when it has neither); flattened into result.json. MobileNet-like:
    `macs_m` at the search resolution, `resolution`, `max_macs_m` at `macs_resolution`."""
    final_centers: list[str] | None = None
    """The K centers of the final graph, by subspace index (in memory only, not in
    result.json): what DSM-NAS+ transfers to another dataset's search."""
    best_visited: dict[str, Any] | None = None
    """The best architecture the search visited (`best_visited`): {"arch", "val_acc",
    "test_acc"}; its val_acc is at least the answer's."""
    front: pd.DataFrame | None = None
    """With `--objectives`: the front of the search (`envs.objectives.search_front`), `arch`
    and one column per objective; written to front.csv. None: one objective."""
    front_figures: dict[str, float] | None = None
    """With `--objectives`: hypervolume_val, hypervolume_test (and igd_plus_val where the
    space knows its true front); in result.json."""

    def to_json(self) -> dict[str, Any]:
        skip = ("history", "final_centers", "front")
        d = {k: v for k, v in asdict(self).items() if k not in skip}
        for optional in ("test_acc", "metrics", "best_visited", "front_figures"):
            if d[optional] is None:
                del d[optional]
        d.update(d.pop("metrics", {}))
        return d

    def save(self, out_dir: str | Path) -> Path:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "result.json").write_text(json.dumps(self.to_json(), indent=2) + "\n")
        self.history.to_csv(out / "history.csv", index=False)
        if self.front is not None:
            self.front.to_csv(out / FRONT_FILE, index=False)
        return out


def best_visited(benchmark, space, history: "pd.DataFrame", answer: np.ndarray,
                 answer_val: float, answer_test: dict[str, float] | None) -> dict[str, Any]:
    """The best architecture a search visited: the answer, or a query of `history` with a
    higher validation accuracy that is within the benchmark's limits (as an answer must be).
    The official code logs it besides the answer; for `dsm-noupdate`, whose answer is by
    definition the best of its K initial centers, it is what the search found. Test
    accuracy is the answer's `answer_test` when the answer is the best, else looked up
    (`benchmark.report`) for the report."""
    if len(history):
        better = history[history["val_acc"] > answer_val].sort_values(
            "val_acc", ascending=False, kind="stable")
        for arch, acc in zip(better["arch"], better["val_acc"]):
            candidate = space.parse(arch)
            if benchmark.feasible(candidate):
                return {"arch": space.format(candidate), "val_acc": float(acc),
                        "test_acc": benchmark.report(candidate) or None}
    return {"arch": space.format(answer), "val_acc": float(answer_val),
            "test_acc": answer_test or None}


def local_env(algo) -> DSMNASEnv:
    """The DSMNAS-v0 instance inside an algorithm's local env runner (on the synchronous
    vector env of N workers, `envs.workers.SyncSearchVectorEnv`, the one search its N
    sub-envs share)."""
    from dsmnas.envs.workers import SyncSearchVectorEnv

    vector = algo.env_runner_group.local_env_runner.env.unwrapped
    if isinstance(vector, SyncSearchVectorEnv):
        return vector.search
    return vector.envs[0].unwrapped


UPDATES_PER_ITERATION = 16
"""REINFORCE rounds (one query, one update each) per `train()` call of a search: RLlib's
per-iteration bookkeeping is then paid once per 16 queries (the search is the same; an
iteration stops at the round in which the budget ends)."""


def dsm_algo_config(env_config: EnvConfig, learner: LearnerSettings = LearnerSettings()):
    """The REINFORCE config of one DSM-NAS search (GNN+LSTM controller, seeded by the env's
    seed), as `run_search` builds it."""
    from dsmnas.trainables.reinforce import reinforce_config

    return reinforce_config(
        DSMNASEnv,
        env_config=env_config.to_dict(),
        model_config={
            "use_graph": learner.use_graph, "mask_noop_edits": learner.mask_noop_edits,
            "message_passing": learner.message_passing,
        },
        lr=learner.lr,
        entropy_coeff=learner.entropy,
        seed=env_config.seed,
        baseline_decay=learner.baseline_decay,
        weight_decay=learner.weight_decay,
        train_batch_size=learner.batch_size,
        updates_per_iteration=UPDATES_PER_ITERATION,
    )


def run_search(
    env_config: EnvConfig,
    learner: LearnerSettings = LearnerSettings(),
    progress: Callable[[str], None] | None = print,
    progress_every_s: float = 2.0,
    recorder=None,
) -> SearchResult:
    """Run one search to the end of its budget, in this process (no Ray instance needed).
    `recorder` (a `trainables.checkpoint.SearchRecorder`) writes the history as it goes,
    checkpoints, and resumes."""
    return run_episode_search(
        dsm_algo_config(env_config, learner),
        env_config,
        {"learner": asdict(learner)},
        progress,
        progress_every_s,
        recorder=recorder,
    )


def is_vector_search(algo_config) -> bool:
    """Whether `algo_config` runs one synchronous search over N workers: RLlib builds the
    registered vector env of `trainables.workers.vector_search`, whose N sub-envs share one
    DSMNAS-v0 search."""
    mode = getattr(algo_config.gym_env_vectorize_mode, "value", algo_config.gym_env_vectorize_mode)
    return algo_config.env == SYNC_ENV_ID and str(mode).lower() == "vector_entry_point"


def run_episode_search(
    algo_config,
    env_config: EnvConfig,
    method_config: dict[str, Any] | None = None,
    progress: Callable[[str], None] | None = print,
    progress_every_s: float = 2.0,
    recorder=None,
) -> SearchResult:
    """One search with any RLlib agent: `algo_config.train()` until the episode ends.

    `algo_config` (an `AlgorithmConfig`) must run DSMNAS-v0 with `env_config` in one
    in-process env: `num_env_runners=0` and `num_envs_per_env_runner=1` (or N sub-envs of
    one synchronous search over N workers, `trainables.workers.vector_search`), so that the env's
    final graph, history and clock can be read when its episode ends (the env keeps them
    in `last_finished`, since the runner resets it at once). With remote env runners each
    runner would run its own episode with its own seed (RLlib adds the worker index), so
    "the" search would not be defined: that raises ValueError. Steps that the agent
    samples after the episode's end (the rest of its last train batch, in a fresh episode)
    are not part of the search and cost it nothing. `method_config` is merged into
    `result.config` (e.g. the agent's settings). `recorder` (optional) is called with
    `start(algo, env)` before the first `train()` (where a resumed search restores its
    checkpoint) and `after_train(algo, env)` after each. Ray is started only if the agent
    needs it (remote runners or Learners; `trainables.ray_utils.build_algo`).
    """
    runners = algo_config.num_env_runners or 0
    envs = 1 if is_vector_search(algo_config) else algo_config.num_envs_per_env_runner
    if runners != 0 or envs != 1:
        raise ConfigError(
            f"one search is one episode of one in-process env: num_env_runners must be 0 "
            f"and num_envs_per_env_runner 1, got {runners} and "
            f"{algo_config.num_envs_per_env_runner} (N workers of one search: "
            f"dsmnas.trainables.workers.vector_search)"
        )
    if EnvConfig.from_dict(dict(algo_config.env_config or {})) != env_config:
        raise ConfigError(
            f"algo_config's env_config {dict(algo_config.env_config or {})} is not "
            f"env_config {env_config.to_dict()}"
        )
    t0 = time.perf_counter()
    algo = build_algo(algo_config)
    try:
        env = local_env(algo)
        if not isinstance(env, DSMNASEnv):
            raise ConfigError(f"algo_config's env must be DSMNAS-v0, got {type(env).__name__}")
        budget = env.benchmark.clock.budget_s
        if recorder is not None:
            recorder.start(algo, env)
        live, save = _live(algo, env)
        startup_s = time.perf_counter() - t0
        start = last_print = time.perf_counter()
        while env.episodes_finished == 0:
            train_result = algo.train()
            forget_episode_chunks(algo)
            if recorder is not None:
                recorder.after_train(algo, env)
            if live is not None:
                live.progress([env_state(env)], learner_entropy(train_result),
                              save if env.episodes_finished == 0 else None)
            now = time.perf_counter()
            if progress and now - last_print >= progress_every_s:
                last_print = now
                progress(_progress_line(env, now - start))
        wall_s = time.perf_counter() - start
        if live is not None:
            live.last = ([env_state(env)], learner_entropy(train_result))
    finally:
        algo.stop()
    result = finished_result(env, env_config, method_config, budget, wall_s, startup_s)
    if progress:
        graph, _, clock = env.last_finished
        progress(_progress_line(env, wall_s, graph=graph, clock=clock) + "  done")
    return result


def _live(algo, env: DSMNASEnv):
    """The active Tune trial reporter (None outside a trial) and how this search saves its
    state for a checkpoint (None where it cannot be restored exactly: only REINFORCE on one
    DSMNAS-v0 env, dsm and its variants, is). A trial that Tune restarted from a checkpoint
    restores it here, before the first `train()`."""
    from dsmnas.trainables.live import active

    live = active()
    if live is None:
        return None, None
    from dsmnas.trainables.checkpoint import restore_checkpoint, write_state
    from dsmnas.trainables.reinforce import REINFORCE

    exact = (type(algo) is REINFORCE and type(env) is DSMNASEnv
             and not is_vector_search(algo.config))
    with live.restored() as folder:
        if folder is not None:
            if not exact:
                raise ConfigError(f"{type(algo).__name__} on {type(env).__name__} cannot "
                                  f"resume from a checkpoint")
            restore_checkpoint(algo, env, folder)

    def save(folder):
        write_state(algo, env, folder, len(env.history))

    return live, save if exact else None


def forget_episode_chunks(algo) -> None:
    """Drop the chunks of the ongoing episode that RLlib's env runner keeps for its episode
    metrics. A search is one episode, so the runner would keep every step's observation
    until the search ends: a lone NAS-Bench-201 search grew 1,119 -> 1,143 MB from 100 to
    3,000 queries with them, and stayed at 1,119 MB without (2-core machine, 2026-12-06).
    What a search keeps per query is then its history row. RLlib's metrics of the episode
    (its length and return) count only its last chunk; nothing here reads them."""
    runner = algo.env_runner_group.local_env_runner
    chunks = getattr(runner, "_ongoing_episodes_for_metrics", None)  # Ray 2.60's field
    if chunks:
        chunks.clear()


def learner_entropy(train_result) -> float | None:
    """The policy's entropy in the last update of an RLlib `train()` result (None when it
    logged none)."""
    from ray.rllib.core import DEFAULT_MODULE_ID
    from ray.rllib.utils.metrics import LEARNER_RESULTS

    value = (train_result or {}).get(LEARNER_RESULTS, {}).get(DEFAULT_MODULE_ID, {}).get("entropy")
    return None if value is None else float(value)


def finished_result(env: DSMNASEnv, env_config: EnvConfig, method_config: dict | None,
                    budget_s: float, wall_s: float, startup_s: float,
                    finished: tuple | None = None) -> SearchResult:
    """The `SearchResult` of `env`'s finished episode (`finished`, default its
    `last_finished`): the answer is the best center of the final graph by validation
    accuracy; test accuracy is looked up for the report."""
    graph, history, clock = finished or env.last_finished
    best = graph.best()
    tokens = graph.centers[best]
    test = env.benchmark.report(tokens)
    frame = history_frame(history, env.benchmark.history_metrics)
    front = figures = None
    if env.benchmark.objectives is not None:
        from dsmnas.envs.objectives import search_front

        front, figures = search_front(frame, env.benchmark)
    return SearchResult(
        arch=env.space.format(tokens),
        val_acc=float(graph.val_acc[best]),
        queries=clock["queries"],
        sim_time_s=clock["sim_time_s"],
        wall_time_s=wall_s,
        startup_s=startup_s,
        seed=env_config.seed,
        history=frame,
        test_acc=test or None,
        config={
            "env": env_config.to_dict(),
            **(method_config or {}),
            "source": env.benchmark.source,
            "val_metric": env.benchmark.val_metric,
            "budget_s": budget_s,
            "budget_queries": clock["budget_queries"],
            "cache_queries": clock["cache_queries"],
            "skipped_over_limit": clock.get("skipped_over_limit", 0),
        },
        final_centers=[env.space.format(c) for c in graph.centers],
        metrics=env.benchmark.answer_metrics(tokens),
        best_visited=best_visited(env.benchmark, env.space, frame, tokens,
                                  graph.val_acc[best], test),
        front=front,
        front_figures=figures,
    )


def run_dsm(env_config: EnvConfig, settings: dict[str, Any], progress=None) -> SearchResult:
    """`run_search` with `LearnerSettings` from a dict (the methods registry's signature)."""
    from dsmnas.envs.settings import parse_settings

    (learner,) = parse_settings("dsm", settings, LearnerSettings)
    return run_search(env_config, learner_for_space(env_config.space, learner, settings), progress=progress)


def _progress_line(env: DSMNASEnv, wall_s, graph=None, clock=None) -> str:
    graph = graph or env.graph
    clock = clock or env.benchmark.clock.state()
    return f"{progress_text(clock)}  best val {np.max(graph.val_acc):.3f}  wall {wall_s:.1f} s"
