"""A search's results written as it goes, its full state checkpointed, and exact resumption.

`SearchRecorder` plugs into `run_episode_search`: after every `train()` it appends the newly
answered queries to `DIR/history.csv` (header once, flushed), and every `checkpoint_every`
queries (at the end of the `train()` call that crosses each multiple: a DSM-NAS search's
calls are up to `trainables.search.UPDATES_PER_ITERATION` queries) it saves the search's
complete state to `DIR/checkpoint/`:

    checkpoint/algo/         `algo.save_to_path`: module weights, Adam state, the REINFORCE
                             baseline (Learner state), env-runner and metrics state
    checkpoint/search.pkl    what RLlib checkpoints do not hold: `DSMNASEnv.get_state()`
                             (graph, budget clock, history, np_random, episode counters), the
                             global RNG states (torch, whose `torch.multinomial` draws the
                             module's actions; numpy; random) and the history row count

A checkpoint is written to a temporary folder and renamed into place; the previous one is
moved aside first and deleted after, so a kill at any moment leaves one complete checkpoint
(`checkpoint/`, or `.checkpoint-old/` between the two renames, which `load` falls back to).

Resuming (`SearchRecorder(..., resume=True)`) builds the algorithm from the same config,
restores `algo/`, sets the env's state, hands the env runner the restored observation as
an ongoing episode (RLlib's runner would otherwise reset the env on its first sample; this
uses the runner's private episode fields of Ray 2.60), restores the RNG states last, and
truncates history.csv to the checkpoint's rows. With one torch thread (set by the CLI) the
resumed search makes exactly the queries an uninterrupted one makes.
"""

from __future__ import annotations

import os
import pickle
import random
import shutil
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from dsmnas import PACKAGES
from dsmnas.envs import DSMNASEnv, history_frame
from dsmnas.envs.errors import ConfigError, MissingFileError

CHECKPOINT_DIR = "checkpoint"
_OLD_DIR = ".checkpoint-old"
_TMP_DIR = ".checkpoint-tmp"
STATE_FILE = "search.pkl"


def get_rng_states() -> dict[str, Any]:
    """The process-global generators that the next steps draw from."""
    import torch

    states = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "random": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["torch_cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    import torch

    torch.set_rng_state(states["torch"])
    np.random.set_state(states["numpy"])
    random.setstate(states["random"])
    if "torch_cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["torch_cuda"])


def checkpoint_path(out_dir: str | Path) -> Path | None:
    """The complete checkpoint under `out_dir`, or None."""
    out = Path(out_dir)
    for name in (CHECKPOINT_DIR, _OLD_DIR):
        if (out / name / STATE_FILE).exists():
            return out / name
    return None


def save_checkpoint(algo, env: DSMNASEnv, out_dir: str | Path, rows: int) -> Path:
    """Save the search's state after `rows` answered queries (atomically, see module doc)."""
    out = Path(out_dir)
    rng = get_rng_states()  # first: nothing below may draw before it is recorded
    tmp = out / _TMP_DIR
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    write_state(algo, env, tmp, rows, rng)
    final, old = out / CHECKPOINT_DIR, out / _OLD_DIR
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)
    return final


class _StateUnpickler(pickle.Unpickler):
    """Reads `search.pkl` of dsmnas 0.3 too: its classes were pickled under the bare package
    names (`envs.records.QueryRecord`), which 0.4 moved under `dsmnas`."""

    def find_class(self, module: str, name: str):
        if module.partition(".")[0] in PACKAGES:
            module = f"dsmnas.{module}"
        return super().find_class(module, name)


def write_state(algo, env: DSMNASEnv | Sequence[DSMNASEnv], folder: str | Path, rows: int,
                rng: dict[str, Any] | None = None) -> None:
    """Write the search's state into `folder`: `algo/` and `search.pkl` (`rng`: the RNG
    states recorded before anything else drew; default: now). `env`: the search's env, or
    the member envs of a population (`trainables.population`), whose states are saved in
    order (the module's per-member generators are in `algo/`)."""
    folder = Path(folder)
    rng = get_rng_states() if rng is None else rng
    algo.save_to_path(str((folder / "algo").resolve()))
    envs = env if isinstance(env, (list, tuple)) else None
    state = {"rows": rows, "rng": rng,
             "env": [e.get_state() for e in envs] if envs is not None else env.get_state()}
    with open(folder / STATE_FILE, "wb") as f:
        pickle.dump(state, f)
        f.flush()
        os.fsync(f.fileno())


def restore_checkpoint(algo, env: DSMNASEnv | Sequence[DSMNASEnv], path: str | Path) -> int:
    """Restore a built algorithm and its env (or a population's member envs, in order) from
    `path`; returns the history row count."""
    from ray.rllib.env.single_agent_episode import SingleAgentEpisode
    from ray.rllib.utils.metrics import ENV_TO_MODULE_CONNECTOR

    path = Path(path)
    with open(path / STATE_FILE, "rb") as f:
        state = _StateUnpickler(f).load()
    envs = list(env) if isinstance(env, (list, tuple)) else [env]
    states = state["env"] if isinstance(env, (list, tuple)) else [state["env"]]
    if len(states) != len(envs):
        raise ConfigError(f"{path} holds {len(states)} search(es), this run has {len(envs)}")
    algo.restore_from_path(str((path / "algo").resolve()))
    runner = algo.env_runner_group.local_env_runner
    # A real first reset through the vector env and its wrappers (they refuse a step before
    # a reset), then the restored state replaces what the reset made.
    runner._reset_envs_and_episodes(explore=True)
    observations, infos = [], []
    for i, (e, s) in enumerate(zip(envs, states)):
        e.set_state(s)
        obs, info = e.observation()
        if isinstance(env, (list, tuple)):  # a population member's obs say which one it is
            from dsmnas.envs.population import MEMBER_KEY

            obs = {**obs, MEMBER_KEY: np.int64(i)}
        observations.append(obs)
        infos.append(info)
    episodes = []
    for obs, info in zip(observations, infos):
        episode = SingleAgentEpisode(
            observation_space=runner.env.single_observation_space,
            action_space=runner.env.single_action_space,
        )
        episode.add_env_reset(observation=obs, infos=info)
        episodes.append(episode)
    runner._ongoing_episodes = episodes
    runner._ongoing_episodes_for_metrics.clear()
    runner._cached_to_module = runner._env_to_module(
        rl_module=runner.module,
        episodes=runner._ongoing_episodes,
        explore=True,
        shared_data=runner._shared_data,
        metrics=runner.metrics,
        metrics_prefix_key=(ENV_TO_MODULE_CONNECTOR,),
        obs=observations,
        infos=infos,
    )
    set_rng_states(state["rng"])  # last: restoring and priming above may draw
    return int(state["rows"])


def truncate_csv(path: str | Path, rows: int) -> None:
    """Keep the header and the first `rows` data rows of a CSV written by `HistoryWriter`."""
    path = Path(path)
    lines = path.read_bytes().splitlines(keepends=True)
    if len(lines) < rows + 1:
        raise ConfigError(f"{path} has {max(len(lines) - 1, 0)} rows; the checkpoint needs {rows}")
    path.write_bytes(b"".join(lines[: rows + 1]))


class SearchRecorder:
    """Writes `out_dir/history.csv` as the search goes and checkpoints every
    `checkpoint_every` answered queries (0: never); with `resume`, continues from the
    checkpoint in `out_dir`. Hooks: `start(algo, env)` once, `after_train(algo, env)`."""

    def __init__(self, out_dir: str | Path, checkpoint_every: int = 25, resume: bool = False):
        if checkpoint_every < 0:
            raise ConfigError(f"checkpoint_every must be >= 0 queries, got {checkpoint_every}")
        self.out = Path(out_dir)
        self.checkpoint_every = checkpoint_every
        self.resume = resume
        self.history_path = self.out / "history.csv"
        self.rows = 0
        self.checkpointed_rows = 0

    def start(self, algo, env: DSMNASEnv) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        if self.resume:
            path = checkpoint_path(self.out)
            if path is None:
                raise MissingFileError(f"no checkpoint in {self.out} to resume from")
            self.rows = self.checkpointed_rows = restore_checkpoint(algo, env, path)
            truncate_csv(self.history_path, self.rows)
        else:
            # A fresh search in a used folder: an old checkpoint must not be resumed into it.
            for name in (CHECKPOINT_DIR, _OLD_DIR, _TMP_DIR):
                shutil.rmtree(self.out / name, ignore_errors=True)
            self.history_path.write_text(",".join(env.history_columns) + "\n")

    def after_train(self, algo, env: DSMNASEnv) -> None:
        # The runner resets the env as soon as its episode ends: the search's rows are then
        # those of the finished episode.
        finished = env.episodes_finished > 0
        history = env.last_finished[1] if finished else env.history
        new = history[self.rows:]
        if new:
            with open(self.history_path, "a", newline="") as f:
                history_frame(new, env.benchmark.history_metrics).to_csv(
                    f, header=False, index=False)
                f.flush()
            self.rows = len(history)
        n = self.checkpoint_every
        if not finished and n and self.rows // n > self.checkpointed_rows // n:
            save_checkpoint(algo, env, self.out, self.rows)
            self.checkpointed_rows = self.rows
