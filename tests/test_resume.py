"""A search's state is checkpointable and a killed search resumes exactly.

The env's `get_state`/`set_state` round trips are checked step by step against the original
env; the end-to-end test SIGKILLs a real `dsmnas search` after a checkpoint, resumes it with
`dsmnas resume` and compares with an uninterrupted search byte for byte.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from dsmnas.envs import DSMNASEnv, EnvConfig
from dsmnas.envs.benchmarks.base import BudgetClock
from dsmnas.trainables.checkpoint import STATE_FILE, checkpoint_path, truncate_csv
from dsmnas.trainables.search import UPDATES_PER_ITERATION

ROOT = Path(__file__).resolve().parents[1]


def _steps(env, actions):
    out = []
    for a in actions:
        obs, r, term, trunc, info = env.step(a)
        out.append((obs, r, term, info))
        if term:
            break
    return out


def _same_steps(a, b):
    assert len(a) == len(b)
    for (oa, ra, ta, ia), (ob, rb, tb, ib) in zip(a, b):
        assert all(np.array_equal(oa[k], ob[k]) for k in oa)
        assert (ra, ta, ia) == (rb, tb, ib)


@pytest.mark.parametrize("cache", [False, True])
def test_env_state_round_trip_continues_like_the_original(nb201_data, cache):
    cfg = EnvConfig(table=nb201_data.table, budget_s=nb201_data.budget_s(4000), seed=5, K=3, M=2,
                    cache_queries=cache)
    env = DSMNASEnv(cfg.to_dict())
    env.reset()
    rng = np.random.default_rng(0)
    # Few distinct edits, so that the cache sees repeats.
    actions = [rng.integers(0, env.action_space.nvec) % [3, 2, 2, 2, 2] for _ in range(200)]
    _steps(env, actions[:6])
    state = pickle.loads(pickle.dumps(env.get_state()))  # as a checkpoint stores it

    twin = DSMNASEnv(cfg.to_dict())
    twin.reset(seed=123)  # a different episode: set_state must replace all of it
    twin.set_state(state)
    assert twin.observation()[1] == env.observation()[1]
    _same_steps(_steps(env, actions[6:]), _steps(twin, actions[6:]))
    assert env.history == twin.history and env.episodes_finished == twin.episodes_finished
    assert env.episodes_finished == (0 if cache else 1)  # with the cache, repeats are free
    assert env.benchmark.clock.get_state() == twin.benchmark.clock.get_state()
    # np_random continues too: the next episode's initial centers are the same.
    a, b = env.reset()[0], twin.reset()[0]
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_env_set_state_rejects_another_config(nb201_data):
    env = DSMNASEnv(EnvConfig(table=nb201_data.table, budget_s=4000, seed=5).to_dict())
    env.reset()
    other = DSMNASEnv(EnvConfig(table=nb201_data.table, budget_s=4000, seed=6).to_dict())
    with pytest.raises(ValueError, match="config"):
        other.set_state(env.get_state())


def test_clock_state_round_trip_keeps_the_cache():
    clock = BudgetClock(budget_s=10.0, cache_queries=True)
    clock.charge(1, 3.0)
    clock.charge(1, 3.0)
    copy = BudgetClock(budget_s=10.0, cache_queries=True)
    copy.set_state(clock.get_state())
    assert copy.charge(1, 3.0) == (True, 0.0, True)  # a repeat: free, from the cache
    assert copy.charge(2, 3.0) == (True, 3.0, False)
    assert copy.charge(3, 5.0) == (False, 0.0, False)  # 6 + 5 > 10
    assert (copy.queries, copy.cache_hits, copy.sim_time_s) == (4, 2, 6.0)


def test_truncate_csv_keeps_header_and_rows(tmp_path):
    p = tmp_path / "h.csv"
    p.write_text("a,b\n1,2\n3,4\n5,")  # a torn last line, as a kill can leave
    truncate_csv(p, 2)
    assert p.read_text() == "a,b\n1,2\n3,4\n"
    with pytest.raises(ValueError, match="needs 3"):
        truncate_csv(p, 3)


def _cli(*args) -> list[str]:
    return [sys.executable, "-m", "dsmnas.experiments.cli", *args]


def _rows(path: Path) -> int:
    return max(len(path.read_bytes().splitlines()) - 1, 0) if path.exists() else 0


def _result(out: Path, with_test_acc: bool) -> dict:
    r = json.loads((out / "result.json").read_text())
    keys = ("arch", "val_acc", "queries", "sim_time_s") + (("test_acc",) if with_test_acc else ())
    return {k: r[k] for k in keys}


def test_killed_search_resumes_exactly(nb201_data, tmp_path):
    args = ["search", *nb201_data.args, "--budget", str(nb201_data.budget_s(20000)), "--seed",
            "7", "-K", "3", "-M", "3", "--checkpoint-every", "10", "--quiet"]
    full, killed = tmp_path / "full", tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # Each in its own session, so that killing its process group reaches Ray's processes too.
    run = lambda out: subprocess.Popen(  # noqa: E731
        _cli(*args, "--out", str(out)), cwd=ROOT, env=env, start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    p_full, p_killed = run(full), run(killed)
    try:
        deadline = time.monotonic() + 120
        while not (checkpoint_path(killed) and _rows(killed / "history.csv") >= 12):
            assert p_killed.poll() is None, p_killed.stdout.read().decode()[-2000:]
            assert time.monotonic() < deadline, "no checkpoint within 120 s"
            time.sleep(0.02)
        os.killpg(p_killed.pid, signal.SIGKILL)
        p_killed.wait()
        assert not (killed / "result.json").exists()
        with open(checkpoint_path(killed) / STATE_FILE, "rb") as f:
            saved_rows = pickle.load(f)["rows"]
        # at the end of the iteration that crossed 10 queries (iterations are up to 16)
        assert 10 <= saved_rows <= min(10 + UPDATES_PER_ITERATION, _rows(killed / "history.csv"))
        written = (killed / "history.csv").read_bytes().splitlines(keepends=True)

        resumed = subprocess.run(
            _cli("resume", str(killed), "--quiet"), cwd=ROOT, env=env, capture_output=True,
            text=True, timeout=180,
        )
        assert resumed.returncode == 0, resumed.stderr[-2000:]
        assert p_full.wait(timeout=180) == 0, p_full.stdout.read().decode()[-2000:]
    finally:
        for p in (p_full, p_killed):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
    full_csv = (full / "history.csv").read_bytes()
    assert _rows(full / "history.csv") > saved_rows + 20  # the resumed part is long enough
    # Rows written as the search went are those of the final file (same format too).
    assert full_csv.startswith(b"".join(written[: saved_rows + 1]))
    assert (killed / "history.csv").read_bytes() == full_csv
    with_test_acc = bool(nb201_data.test_datasets)
    assert _result(killed, with_test_acc) == _result(full, with_test_acc)


def test_resume_without_checkpoint_or_config_is_a_one_line_error(tmp_path, capsys):
    from dsmnas.experiments.cli import main

    (tmp_path / "search.json").write_text("{}")
    assert main(["resume", str(tmp_path), "--quiet"]) == 2
    assert main(["resume", str(tmp_path / "nowhere"), "--quiet"]) == 2
    (tmp_path / "checkpoint").mkdir()
    (tmp_path / "checkpoint" / STATE_FILE).write_bytes(b"")
    assert main(["resume", str(tmp_path), "--quiet"]) == 2  # search.json without keys
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 3 and "no checkpoint" in err[0] and "not found" in err[1]
    assert "is not a search's config" in err[2]
