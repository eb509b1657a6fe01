"""DSM-NAS with several objectives (`envs.mo_subspaces`, `EnvConfig.mo_form`): the env's
observation and info, the Tchebycheff reward and center rule replayed from a history, the
hypervolume form's rewards adding up to the front's hypervolume, checkpoints mid-episode, and
`dsm` / `dsm-hv` searches (lone and as a population) writing fronts, on the embedded
NAS-Bench-201 data."""

from __future__ import annotations

import json

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from dsmnas.envs import DSMNASEnv, EnvConfig
from dsmnas.envs.mo_subspaces import OBSERVATION_KEY, RHO, center_weights, tchebycheff
from dsmnas.experiments.cli import main

moocore = pytest.importorskip("moocore", reason="needs the extra mo (moocore)")

LATENCY = "val_acc:max,latency_s:min"


def make(**kwargs) -> DSMNASEnv:
    return DSMNASEnv(**{"seed": 0, "objectives": LATENCY, **kwargs})


def random_episode(env: DSMNASEnv, steps: int, seed: int = 1):
    """(initial centers, their raw objectives, steps' (action, reward, info)) of `steps`
    random actions."""
    env.reset()
    centers = env.graph.centers.copy()
    raw = np.array([env.mo.raw(v, env.benchmark.query_metrics(c))
                    for c, v in zip(centers, env.graph.val_acc)])
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(steps):
        action = rng.integers(env.action_space.nvec)
        _, reward, terminated, _, info = env.step(action)
        if terminated:
            break
        out.append((action, reward, info))
    return centers, raw, out


def test_the_env_passes_gymnasium_checker_and_carries_the_objectives():
    env = make()
    check_env(make())
    obs, _ = env.reset()
    K = env.config.K
    assert obs[OBSERVATION_KEY].shape == (K, 4) and obs[OBSERVATION_KEY].dtype == np.float32
    np.testing.assert_allclose(obs[OBSERVATION_KEY][:, 2:], center_weights(K, 2), rtol=1e-6)
    f = obs[OBSERVATION_KEY][:, :2]
    np.testing.assert_allclose(f[:, 0], 1 - env.graph.val_acc / 100, rtol=1e-5)
    _, _, _, _, info = env.step(env.action_space.sample())
    assert set(info["objectives"]) == {"val_acc", "latency_s"}
    assert info["objectives"]["val_acc"] == info["val_acc"]
    # one objective: the observation is as before
    assert OBSERVATION_KEY not in DSMNASEnv(seed=0).reset()[0]


@pytest.mark.parametrize("K, m", [(1, 2), (4, 2), (10, 2), (4, 3), (10, 3)])
def test_center_weights_are_distinct_positive_and_sum_to_one(K, m):
    w = center_weights(K, m)
    assert w.shape == (K, m) and np.all(w > 0)
    np.testing.assert_allclose(w.sum(axis=1), 1.0)
    assert len({tuple(np.round(r, 9)) for r in w}) == K


def test_tchebycheff_rewards_and_center_updates_replay_from_the_history():
    env = make()
    centers, raw, steps = random_episode(env, 60)
    f = env.mo.objectives.normalise(raw)
    w = center_weights(env.config.K, 2)
    accepted = 0
    for action, reward, info in steps:
        i = int(action[0])
        beta = env.mo.objectives.normalise([[info["objectives"][n] for n in ("val_acc",
                                                                              "latency_s")]])[0]
        g_alpha, g_beta = tchebycheff(f[i], w[i]), tchebycheff(beta, w[i])
        assert reward == pytest.approx(100 * (g_alpha - g_beta), abs=1e-9)
        assert g_beta == pytest.approx(max(w[i] * beta) + RHO * sum(w[i] * beta))
        assert info["accepted"] == (g_beta < g_alpha)
        if info["accepted"]:
            f[i], accepted = beta, accepted + 1
    assert accepted >= 3  # the replay checked real center moves
    np.testing.assert_allclose(env.mo.get_state()["f"], f)


def test_hypervolume_rewards_add_up_to_the_known_fronts_hypervolume():
    env = make(mo_form="hypervolume")
    _, raw, steps = random_episode(env, 60)
    rewards = np.array([r for _, r, _ in steps])
    assert np.all(rewards >= 0) and np.count_nonzero(rewards) >= 3
    points = [*raw, *[[i["objectives"]["val_acc"], i["objectives"]["latency_s"]]
                      for _, _, i in steps]]
    objectives = env.mo.objectives
    expected = 100 * (objectives.hypervolume(points) - objectives.hypervolume(raw))
    assert rewards.sum() == pytest.approx(expected, abs=1e-9)
    # a center is replaced exactly when the K centers then cover more hypervolume
    f = objectives.normalise(raw)
    hv = lambda points: float(moocore.hypervolume(points, ref=np.ones(2)))  # noqa: E731
    moved = 0
    for action, _, info in steps:
        i = int(action[0])
        swapped = f.copy()
        swapped[i] = objectives.normalise([[info["objectives"]["val_acc"],
                                            info["objectives"]["latency_s"]]])[0]
        assert info["accepted"] == (hv(swapped) > hv(f))
        if info["accepted"]:
            f, moved = swapped, moved + 1
    assert moved >= 2
    np.testing.assert_allclose(env.mo.get_state()["f"], f)


def test_a_checkpoint_mid_episode_continues_exactly():
    for form in ("tchebycheff", "hypervolume"):
        env = make(mo_form=form)
        random_episode(env, 20)
        state = env.get_state()
        other = make(mo_form=form)
        other.set_state(state)
        rng = np.random.default_rng(7)
        for _ in range(20):
            action = rng.integers(env.action_space.nvec)
            a, b = env.step(action), other.step(action)
            assert a[1] == b[1] and a[4] == b[4]
            for key in a[0]:
                np.testing.assert_array_equal(a[0][key], b[0][key])


def test_dsm_search_writes_its_front_and_the_same_seed_gives_the_same_history(tmp_path):
    out = []
    for run in ("a", "b"):
        argv = ["search", "--objectives", LATENCY, "--budget", "40000", "--seed", "3",
                "--out", str(tmp_path / run), "--quiet"]
        assert main(argv) in (0, None)
        out.append(tmp_path / run)
    a, b = ((d / "history.csv").read_text() for d in out)
    assert a == b
    import pandas as pd

    front = pd.read_csv(out[0] / "front.csv")
    result = json.loads((out[0] / "result.json").read_text())
    assert set(result["front_figures"]) >= {"hypervolume_val", "igd_plus_val"}
    history = pd.read_csv(out[0] / "history.csv")
    assert len(front) >= 2
    assert replay_tchebycheff(make(budget_s=40000, seed=3), history) >= 3
    values = front[["val_acc", "latency_s"]].to_numpy()
    assert moocore.is_nondominated(np.column_stack([-values[:, 0], values[:, 1]])).all()
    for _, row in front.iterrows():  # the benchmark's values, as queried
        rows = history[history["arch"] == row["arch"]]
        assert row["val_acc"] == rows["val_acc"].max()
        assert row["latency_s"] == rows["latency_s"].iloc[0]


@pytest.mark.parametrize("method", ["dsm", "dsm-hv"])
def test_a_population_of_multi_objective_searches_is_reproducible(ray_session, method):
    from dsmnas.trainables.methods import run_method_population

    cfg = EnvConfig(objectives=LATENCY, budget_s=30000)
    a = run_method_population(method, cfg, {}, [4, 5])
    b = run_method_population(method, cfg, {}, [4, 5])
    for seed, x, y in zip([4, 5], a, b):
        assert x.history.equals(y.history) and x.front.equals(y.front)
        assert x.front_figures == y.front_figures and x.front_figures["hypervolume_val"] > 0
        if method == "dsm":  # each member follows the Tchebycheff rule from its seed's centers
            assert replay_tchebycheff(make(budget_s=30000, seed=seed), x.history) >= 1
    assert not a[0].history.equals(a[1].history)


def test_ppo_flat_searches_the_tchebycheff_env(ray_session):
    from dsmnas.trainables.methods import run_method

    result = run_method("ppo-flat", EnvConfig(objectives=LATENCY, budget_s=30000, seed=0))
    assert result.front_figures["hypervolume_val"] > 0 and len(result.front) >= 2
    assert replay_tchebycheff(make(budget_s=30000), result.history) >= 1


def replay_tchebycheff(env: DSMNASEnv, history) -> int:
    """Check every history row's reward and `accepted` against the Tchebycheff rule, from the
    env's initial centers (its seed's); the number of center moves."""
    env.reset()
    objectives = env.mo.objectives
    f = objectives.normalise([env.mo.raw(v, env.benchmark.query_metrics(c))
                              for c, v in zip(env.graph.centers, env.graph.val_acc)])
    w = center_weights(env.config.K, 2)
    moves = 0
    for row in history.itertuples():
        i = int(row.subspace)
        beta = objectives.normalise([[row.val_acc, row.latency_s]])[0]
        gain = tchebycheff(f[i], w[i]) - tchebycheff(beta, w[i])
        assert row.reward == pytest.approx(100 * gain, abs=1e-9)
        assert bool(row.accepted) == (gain > 0)
        if gain > 0:
            f[i], moves = beta, moves + 1
    return moves


def test_a_sweep_with_objectives_ranks_configurations_by_validation_hypervolume(tmp_path,
                                                                                  capsys):
    import pandas as pd

    out = tmp_path / "sweep"
    assert main(["sweep", "--K", "2,4", "--objectives", LATENCY, "--seeds", "2", "--budget",
                 "30000", "--out", str(out)]) in (0, None)
    table = pd.read_csv(out / "sweep.csv")
    means = table.groupby("label")["hypervolume_val"].mean()
    printed = capsys.readouterr().out
    assert "best configuration (highest mean validation hypervolume" in printed
    assert f": {means.idxmax()} (K=" in printed
    assert "Ranked by mean validation hypervolume" in (out / "sweep.md").read_text()


@pytest.mark.parametrize("flags", [["--scheduler", "asha"],
                                   ["--search-alg", "optuna", "--num-samples", "2"]])
def test_asha_and_tunes_searchers_rank_by_the_hypervolume_so_far(flags, tmp_path, capsys):
    import pandas as pd

    pytest.importorskip("optuna")
    out = tmp_path / "sweep"
    argv = ["sweep", "--K", "2,4", "--objectives", LATENCY, "--seeds", "2", "--population",
            "2", "--budget", "30000", "--max-concurrent", "1", *flags, "--out", str(out)]
    assert main(argv) in (0, None)
    assert "highest mean validation hypervolume" in capsys.readouterr().out
    progress = [pd.read_csv(f) for f in (out / "tune").glob("*/*/progress.csv")]
    assert progress
    firsts = []
    for frame in progress:  # each trial reported the hypervolume so far, as it searched
        live = frame[frame["report"] == "progress"]
        hv = live["front_hypervolume"].to_numpy()
        assert len(hv) >= 1 and np.all(np.diff(hv) >= 0) and hv[-1] > 0
        firsts.append((len(live), hv[0], live["best_val_acc"].iloc[0]))
    if flags[0] == "--scheduler":  # ASHA stopped the trial of the lower hypervolume, which
        (_, hv_stopped, acc_stopped), (_, hv_kept, acc_kept) = sorted(firsts)
        assert hv_stopped < hv_kept  # on these seeds had the higher best accuracy: ASHA
        assert acc_stopped > acc_kept  # ranked by hypervolume, not by accuracy


def test_a_report_carries_the_hypervolume_of_the_feasible_queries_so_far():
    from dsmnas.envs.objectives import Objectives
    from dsmnas.envs.records import QueryRecord
    from dsmnas.trainables.live import SearchState, TrialReporter

    objectives = Objectives(("val_acc", "latency_s"), ("max", "min"), (0.0, 0.0), (100.0, 1.0))

    def record(step, acc, latency):
        return QueryRecord(step=step, arch=str(step), val_acc=acc, cost_s=1.0, sim_time_s=step,
                           metrics=(("latency_s", latency),))

    history = [record(0, 80.0, 0.5), record(1, 90.0, 0.9), record(2, 95.0, 0.3)]
    # normalised: (0.2, 0.5), (0.1, 0.9), (0.05, 0.3); the limit latency 0.6 drops the second,
    # and the third dominates the first: 0.95 * 0.7; without a limit, the first two alone:
    # 0.8 * 0.5 + 0.9 * 0.1 - 0.8 * 0.1
    a = SearchState(3.0, 10.0, 90.0, history, objectives=objectives, limits={"latency_s": 0.6})
    b = SearchState(3.0, 10.0, 90.0, history[:2], objectives=objectives, limits={})
    metrics = TrialReporter().metrics([a, b])
    assert metrics["front_hypervolume"] == pytest.approx((0.665 + 0.41) / 2)
    assert metrics["front_hypervolume_std"] == pytest.approx(np.std([0.665, 0.41], ddof=1))
    assert "front_hypervolume" not in TrialReporter().metrics([SearchState(3, 10, 90, history)])


def test_an_ablation_with_objectives_reports_the_fronts_hypervolume(tmp_path):
    import pandas as pd

    out = tmp_path / "ablate"
    assert main(["ablate", "reward", "--objectives", LATENCY, "--seeds", "2", "--budget",
                 "30000", "--out", str(out)]) in (0, None)
    runs = pd.read_csv(out / "runs.csv")
    table = pd.read_csv(out / "ablation.csv").set_index("variant")
    for variant, mean in runs.groupby("method")["hypervolume_val"].mean().items():
        assert table.loc[variant, "hypervolume_val"] == pytest.approx(mean)
    assert "| variant | n | hypervolume_val | val_acc |" in (out / "ablation.md").read_text()


# ------------------------------------------------------------------ over parallel workers


def batch_episode(env: DSMNASEnv, batches: int, seed: int = 1):
    """(initial raw objectives, per batch the history rows it added) of random batches."""
    env.reset()
    raw = np.array([env.mo.raw(v, env.benchmark.query_metrics(c))
                    for c, v in zip(env.graph.centers, env.graph.val_acc)])
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(batches):
        before = len(env.history)
        _, ended = env.step_batch([rng.integers(env.action_space.nvec)
                                   for _ in range(env.config.workers)])
        if ended:
            break
        out.append(env.history[before:])
    return raw, out


def row_point(env: DSMNASEnv, row) -> np.ndarray:
    return env.mo.objectives.normalise([env.mo.raw(row.val_acc, row.metrics)])[0]


@pytest.mark.parametrize("form", ["tchebycheff", "hypervolume"])
def test_a_synchronous_batch_is_judged_against_the_centers_and_front_of_its_draw(form):
    """`dsm-sync`'s rule with objectives, replayed batch by batch: every reward against the
    state when the batch was drawn; per center the best improving proposal wins (lowest
    Tchebycheff value, or most hypervolume with it in place), applied in subspace order only
    if it still adds hypervolume; the batch joins the known front afterwards."""
    env = make(mo_form=form, workers=4, budget_s=10**6)
    raw, batches = batch_episode(env, 25)
    hv = lambda points: float(moocore.hypervolume(np.asarray(points).reshape(-1, 2),  # noqa
                                                  ref=np.ones(2)))
    f = env.mo.objectives.normalise(raw)
    w = center_weights(env.config.K, 2)
    front, moves = [*f], 0
    for rows in batches:
        assert len(rows) == 4 and len({dict(r.extra)["start_s"] for r in rows}) == 1
        best: dict[int, tuple[float, int]] = {}
        for j, row in enumerate(rows):
            i, beta = row.subspace, row_point(env, row)
            if form == "tchebycheff":
                assert row.reward == pytest.approx(100 * (tchebycheff(f[i], w[i])
                                                          - tchebycheff(beta, w[i])), abs=1e-9)
                score, improves = -tchebycheff(beta, w[i]), tchebycheff(beta, w[i]) < \
                    tchebycheff(f[i], w[i])
            else:
                assert row.reward == pytest.approx(100 * (hv([*front, beta]) - hv(front)),
                                                   abs=1e-9)
                swapped = f.copy()
                swapped[i] = beta
                score = hv(swapped)
                improves = score > hv(f)
            if improves and (i not in best or score > best[i][0]):
                best[i] = (score, j)
        front += [row_point(env, r) for r in rows]
        accepted = set()
        for i in sorted(best):
            beta = row_point(env, rows[best[i][1]])
            swapped = f.copy()
            swapped[i] = beta
            if form == "tchebycheff" or hv(swapped) > hv(f):
                f, moves = swapped, moves + 1
                accepted.add(best[i][1])
        assert [r.accepted for r in rows] == [j in accepted for j in range(len(rows))]
    assert moves >= 2
    np.testing.assert_allclose(env.mo.get_state()["f"], f)


def test_an_asynchronous_step_is_judged_at_its_start_and_applied_when_it_ends():
    """`dsm-async` with objectives, replayed from its history: a step's Tchebycheff reward
    is against the centers made of the results finished by its start; a result replaces its
    center when it finishes (in the order they finish), if it improves on the center then."""
    from dsmnas.envs.workers import AsyncDSMNASEnv

    env = AsyncDSMNASEnv(seed=0, objectives=LATENCY, workers=4, budget_s=10**6)
    env.reset()
    f = env.mo.objectives.normalise([env.mo.raw(v, env.benchmark.query_metrics(c))
                                     for c, v in zip(env.graph.centers, env.graph.val_acc)])
    rng = np.random.default_rng(3)
    for _ in range(150):
        env.step(rng.integers(env.action_space.nvec))
    w = center_weights(env.config.K, 2)
    rows = list(env.history)
    ends = sorted(range(len(rows)), key=lambda k: (rows[k].sim_time_s, k))
    delivered, moves = 0, 0
    for k, row in enumerate(rows):
        start = dict(row.extra)["start_s"]
        while delivered < len(ends) and rows[ends[delivered]].sim_time_s <= start:
            done = rows[ends[delivered]]
            i, beta = done.subspace, row_point(env, done)
            assert done.accepted == (tchebycheff(beta, w[i]) < tchebycheff(f[i], w[i]))
            if done.accepted:
                f[i], moves = beta, moves + 1
            delivered += 1
        i, beta = row.subspace, row_point(env, row)
        assert row.reward == pytest.approx(100 * (tchebycheff(f[i], w[i])
                                                  - tchebycheff(beta, w[i])), abs=1e-9)
    assert moves >= 3 and delivered < len(rows)  # some still running: judged, not applied
    assert rows != sorted(rows, key=lambda r: r.sim_time_s)  # finished out of order


@pytest.mark.parametrize("method", ["dsm-sync", "dsm-async"])
def test_one_worker_is_dsm_draw_for_draw_with_objectives(method):
    from dsmnas.trainables.methods import run_method

    cfg = EnvConfig(objectives=LATENCY, budget_s=30000, seed=2)
    a, b = run_method(method, cfg, {}), run_method("dsm", cfg, {})
    assert a.history.equals(b.history) and a.front.equals(b.front)


def test_dsm_over_workers_searches_several_objectives_from_the_cli(tmp_path):
    import pandas as pd

    out = tmp_path / "workers"
    assert main(["compare", "--objectives", LATENCY, "--methods", "dsm-sync,dsm-async,ppo-flat",
                 "--workers", "3", "--seeds", "1", "--budget", "20000", "--out",
                 str(out)]) in (0, None)
    runs = pd.read_csv(out / "runs.csv").set_index("method")
    assert (runs["hypervolume_val"] > 0).all() and len(runs) == 3
    for method in runs.index:
        history = pd.read_csv(out / "histories" / f"{method}-0.csv")
        assert history["worker"].nunique() == 3
        front = pd.read_csv(out / "fronts" / f"{method}-0.csv")
        values = front[["val_acc", "latency_s"]].to_numpy()
        assert moocore.is_nondominated(np.column_stack([-values[:, 0], values[:, 1]])).all()
