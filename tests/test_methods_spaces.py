"""Every registered method in every space, through `run_method`: one record type for every
history, and a clear refusal (before anything runs) where a method cannot run in a space."""

from __future__ import annotations

import math
import tempfile

import numpy as np
import pytest

from dsmnas.envs import HISTORY_COLUMNS, EnvConfig
from dsmnas.envs.benchmarks import make_benchmark
from dsmnas.envs.errors import ConfigError
from dsmnas.experiments.cli import main
from tests.conftest import OFA_DIR
from tests.fixture_spaces import write_table
from dsmnas.trainables.methods import METHODS, check_method, run_method

TOY = "tests.fixture_spaces:TOY"
# a table of one's own; written once per test session, named by its (absolute) path
TABLE = "table:" + write_table(tempfile.mkdtemp(prefix="dsmnas-table-"))
SPACES = {
    # small budgets: ~10 queries on the embedded NAS-Bench-201 data, 40 toy queries
    "nb201": dict(budget_s=20_000.0),
    TOY: dict(),
    TABLE: dict(),
    "mobilenet": dict(budget_queries=30, predictor=str(OFA_DIR / "acc_predictor.pth")),
    "nasbench-graph": dict(budget_queries=20),
    "nasbench-graph-proteins": dict(budget_queries=20),
    "fcnet": dict(budget_s=1_000.0),  # ~12 queries on naval_propulsion
}
NOISY = {"fcnet"}
"""Spaces whose query answers one seed's value, drawn afresh: a repeat may answer otherwise."""
REFUSED = {
    # (method, space): what the refusal must say
    ("ofa-evolution", "nb201"): "MobileNet-like \\(OFA\\) space only",
    ("dsm-macs", "nb201"): "dsm-macs needs a limit",
    ("random-mined", TOY): "splits a budget of simulated seconds",
    ("dsm-plus", TOY): "dataset must be one of cifar100, ImageNet16-120",
    ("ofa-evolution", TOY): "MobileNet-like \\(OFA\\) space only",
    ("dsm-macs", TOY): "dsm-macs needs a limit",
    ("random-mined", "mobilenet"): "splits a budget of simulated seconds",
    ("random-mined", TABLE): "splits a budget of simulated seconds",
    ("reinforce", TABLE): "reinforce samples every position from the op mask",
    ("dsm-plus", TABLE): "dataset must be one of cifar100, ImageNet16-120",
    ("ofa-evolution", TABLE): "MobileNet-like \\(OFA\\) space only",
    ("dsm-macs", TABLE): "dsm-macs needs a limit",
    ("dsm-plus", "mobilenet"): "dataset must be one of cifar100, ImageNet16-120",
    **{(method, space): message for space in ("nasbench-graph", "nasbench-graph-proteins")
       for method, message in (
           ("random-mined", "splits a budget of simulated seconds"),
           ("dsm-plus", "dataset must be one of cifar100, ImageNet16-120"),
           ("ofa-evolution", "MobileNet-like \\(OFA\\) space only"),
           ("dsm-macs", "dsm-macs needs a limit"),
       )},
    ("dsm-plus", "fcnet"): "dataset must be one of cifar100, ImageNet16-120",
    ("ofa-evolution", "fcnet"): "MobileNet-like \\(OFA\\) space only",
    ("dsm-macs", "fcnet"): "dsm-macs needs a limit",
    # only nb201 and mobilenet have had a validation-only sweep
    **{("dsm-tuned", space): "space has no tuned settings"
       for space in (TOY, TABLE, "nasbench-graph", "nasbench-graph-proteins", "fcnet")},
    # multi-objective only (tests/test_mo_searchers.py runs it with --objectives)
    **{("nsga2", space): "nsga2 searches several objectives: pass --objectives"
       for space in SPACES},
    # (tests/test_mo_dsm.py runs it with --objectives)
    **{("dsm-hv", space): "dsm-hv searches several objectives" for space in SPACES},
}


EXTRA = {("dsm-plus", "nb201"): {"dataset": "cifar100"}}  # it transfers from cifar10


def _config(space: str, seed: int = 0, **extra) -> EnvConfig:
    if space == "mobilenet" and not (OFA_DIR / "acc_predictor.pth").exists():
        pytest.skip("OFA's predictor (../shared) is needed for the mobilenet space")
    return EnvConfig.from_dict({"space": space, "seed": seed, **SPACES[space], **extra})


def check_history(result, cfg: EnvConfig) -> None:
    """The rows every method writes: the shared columns, the benchmark's metrics, then the
    method's own; one row per answered query, in order, on the budget clock."""
    bench = make_benchmark(cfg)
    h = result.history
    head = [*HISTORY_COLUMNS, *bench.history_metrics]
    assert list(h.columns[: len(head)]) == head
    assert len(h) >= 1 and h.step.tolist() == list(range(len(h)))
    assert np.isfinite(h.val_acc.to_numpy(dtype=float)).all()
    assert (np.diff(h.sim_time_s.to_numpy(dtype=float)) >= 0).all()
    space = bench.space
    for arch in h.arch:
        assert space.is_valid(space.parse(arch))
    for name in bench.history_metrics:
        assert h[name].notna().all()
    answer = space.parse(result.arch)
    assert bench.feasible(answer)
    if cfg.space in NOISY:  # the answer's value is one of its seeds'
        assert result.val_acc in bench.seed_values(answer).tolist()
    else:
        assert result.val_acc == pytest.approx(bench.query(answer, charge=False).val_acc)


@pytest.mark.parametrize("space", list(SPACES), ids=[{TOY: "toy", TABLE: "table"}.get(s, s)
                                                      for s in SPACES])
@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_runs_or_refuses_in_every_space(method, space, ray_session):
    cfg = _config(space, **EXTRA.get((method, space), {}))
    expected = REFUSED.get((method, space))
    if expected is not None:
        with pytest.raises(ConfigError, match=expected):
            check_method(method, cfg, {})
        with pytest.raises(ConfigError, match=expected):  # run_method checks first too
            run_method(method, cfg, {})
        return
    check_method(method, cfg, {})
    result = run_method(method, cfg, {})
    check_history(result, cfg)
    assert result.config["method"] == method


@pytest.mark.parametrize("method", ["dsm", "random", "local", "evolution", "random-update",
                                    "dsm-macs"])
def test_methods_keep_answers_within_a_latency_limit(method, ray_session):
    # NAS-Bench-201's best-validation architectures are slow (0.02 s); 0.015 s binds
    cfg = _config("nb201", seed=1, limits={"latency_s": 0.015})
    result = run_method(method, cfg, {})
    check_history(result, cfg)
    h = result.history
    assert "latency_s" in h.columns
    if "accepted" in h and method != "local":
        assert not (h.accepted.fillna(False).astype(bool) & (h.latency_s > 0.015)).any()


def test_bad_method_settings_fail_before_ray_starts(capsys, monkeypatch):
    import ray

    monkeypatch.setattr(ray, "init", lambda *a, **k: pytest.fail("Ray must not start"))
    for sets, message in (
        (["dsm.bogus=1"], "unknown dsm setting(s) ['bogus']"),
        (["dsm.lr=abc"], "dsm setting lr='abc': expected a number"),
        (["dsm.lr=-1"], "lr must be a number > 0, got -1"),
    ):
        argv = ["compare", "--methods", "dsm", "--seeds", "1", "--budget", "20000"]
        for item in sets:
            argv += ["--set", item]
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err
    assert main(["compare", "--methods", "random-mined", "--space", TOY, "--seeds", "1"]) == 2
    assert "dsmnas compare: error: random-mined splits a budget" in capsys.readouterr().err
    assert main(["search", "--seed", "-1"]) == 2
    assert "seed must be an integer >= 0, got -1" in capsys.readouterr().err


def test_limits_on_any_metric_from_the_cli_and_bad_ones(capsys, monkeypatch):
    import ray

    monkeypatch.setattr(ray, "init", lambda *a, **k: pytest.fail("Ray must not start"))
    assert main(["search", "--limit", "bogus_m=3"]) == 2
    err = capsys.readouterr().err
    assert "cannot limit ['bogus_m']" in err and "latency_s (seconds per image)" in err
    assert main(["search", "--limit", "latency_s=abc"]) == 2
    assert "'abc' is not a number" in capsys.readouterr().err
    cfg = EnvConfig(limits=["latency_s=0.02", "params_mb=0.8"])
    assert cfg.to_dict()["limits"] == {"latency_s": 0.02, "params_mb": 0.8}
    bench = make_benchmark(cfg)
    assert bench.limit_text() == ("latency_s <= 0.02 (seconds per image) and "
                                  "params_mb <= 0.8 (million parameters)")
    assert math.isclose(EnvConfig(space=TOY, limits={"size": 6}).limit("size"), 6)
