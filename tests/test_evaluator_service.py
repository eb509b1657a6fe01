"""The supernet evaluator service (named Ray actors, CPU fallback, restart and failover) and the
fitted predictor. The actors serve a fake evaluator whose accuracy is a known function of the
arch; one test serves the real `SubnetEvaluator` when `envs.evaluators.supernet` exists."""

from __future__ import annotations

import logging
import pickle
import sys
import threading
import time

import pytest
from ray import cloudpickle

from dsmnas.envs.evaluators.client import EvaluatorClient
from dsmnas.trainables.evaluator_placement import actor_options, gpu_fraction
from dsmnas.trainables.evaluator_service import start_evaluators



@pytest.fixture(scope="module", autouse=True)
def _ship_this_module_by_value():
    """Ray's workers cannot import this test module: ship FakeEvaluator and true_acc by
    value while its tests run (left registered, it breaks pickling in later test modules)."""
    module = sys.modules[__name__]
    cloudpickle.register_pickle_by_value(module)
    yield
    cloudpickle.unregister_pickle_by_value(module)

CPUS = 0.25  # per actor: several services fit on the 2-CPU test cluster
EXPANDS = (3, 4, 6)


def true_acc(arch: dict) -> float:
    """A known accuracy: 40 + per active layer 0.5 per kernel step and 0.8 per expand step."""
    acc = 40.0
    for u, depth in enumerate(arch["d"]):
        for j in range(4 * u, 4 * u + depth):
            acc += 0.5 * (arch["ks"][j] - 3) / 2 + 0.8 * EXPANDS.index(arch["e"][j])
    return acc


class FakeEvaluator:
    """The SubnetEvaluator interface with `true_acc`; `delay_s` per evaluate call."""

    def __init__(self, checkpoint, data=None, device="cpu", delay_s=0.0):
        self.resolution = 32
        self.meta = {"checkpoint": checkpoint, "width_mult": 1.0, "dataset": "fake"}
        self.delay_s = delay_s

    def evaluate(self, archs):
        time.sleep(self.delay_s)
        return [true_acc(a) for a in archs]

    def test_accuracy(self, arch):
        return true_acc(arch) - 1.0


def arch(i: int) -> dict:
    """Distinct archs for small i: unit depths and first kernel vary with i."""
    d = [2 + (i // 3**u) % 3 for u in range(5)]
    return {"ks": [(3, 5, 7)[i % 3]] + [3] * 19, "e": [4] * 20, "d": d}


def start(name, n_actors=1, **kw):
    kw.setdefault("factory", FakeEvaluator)
    return start_evaluators("fake.pt", n_actors=n_actors, cpus_per_actor=CPUS, name=name,
                            namespace="test-evaluators", **kw)


def test_placement_rules():
    gpu_node = {"CPU": 4, "GPU": 1, "supernet_evaluator": 4}
    opts, device = actor_options(gpu_node, 4, None, 1, "supernet_evaluator", False)
    assert device == "cuda" and opts == {"num_cpus": 1, "num_gpus": 0.25,
                                         "resources": {"supernet_evaluator": 1}}
    # The custom resource only where the cluster advertises it.
    opts, _ = actor_options({"CPU": 4, "GPU": 2}, 3, None, 1, "supernet_evaluator", False)
    assert opts == {"num_cpus": 1, "num_gpus": 0.5}
    # Asked-for GPUs on a CPU cluster: CPU actors, unless GPUs are required (then they wait).
    assert actor_options({"CPU": 2}, 2, 0.5, 1, "supernet_evaluator", False) == (
        {"num_cpus": 1}, "cpu")
    assert actor_options({"CPU": 2}, 2, 0.5, 1, None, True) == (
        {"num_cpus": 1, "num_gpus": 0.5}, "cuda")
    assert [gpu_fraction(n, g) for n, g in ((1, 1), (4, 1), (3, 2), (1, 4), (2, 0))] == [
        1.0, 0.25, 0.5, 1.0, 0.0]
    with pytest.raises(ValueError, match="gpus_per_actor"):
        actor_options({"GPU": 2}, 1, 1.5, 1, None, False)


def test_caches_use_the_space_key():
    """One key: the actor's cache is keyed by `MobileNetSpace.key`, so an arch that differs
    only in slots beyond a unit's depth (not part of the subnet) is answered from the cache;
    a malformed dict is a ConfigError."""
    from dsmnas.envs.errors import ConfigError
    from dsmnas.envs.evaluators.client import subnet_key
    from dsmnas.envs.spaces.mobilenet import MobileNetSpace
    from dsmnas.trainables.evaluator_service import SupernetEvaluatorActor

    space = MobileNetSpace()
    a = arch(0)  # every unit of depth 2: layers 2 and 3 of each unit are unused
    padded = {**a, "ks": [7 if j % 4 == 3 else k for j, k in enumerate(a["ks"])]}
    assert subnet_key(a) == subnet_key(padded) == space.key(space.from_ofa(a))
    assert subnet_key(space.to_ofa(space.parse("5973-4400-1230-9999-5500"))) == space.key(
        space.parse("5973-4400-1230-9999-5500"))
    actor = SupernetEvaluatorActor("fake.pt", factory=FakeEvaluator)
    assert actor.evaluate([a, padded, arch(1)]) == [true_acc(a), true_acc(a), true_acc(arch(1))]
    assert actor.stats()["evaluations"] == 2 and actor.stats()["cache_hits"] == 1
    for bad in ({"ks": [3] * 20, "e": [3] * 20}, {**a, "ks": [4] * 20}, {**a, "d": [5] * 5},
                None, {**a, "ks": None}):
        with pytest.raises(ConfigError):
            subnet_key(bad)
        with pytest.raises(ConfigError):
            actor.evaluate([bad])


def test_connect_never_starts_ray():
    """The client only connects: in a process without Ray it says so and starts none."""
    import subprocess

    code = (
        "import ray\n"
        "from dsmnas.envs.errors import ConfigError\n"
        "from dsmnas.envs.evaluators.client import EvaluatorClient\n"
        "try:\n"
        "    EvaluatorClient.connect('nowhere')\n"
        "except ConfigError as e:\n"
        "    print('refused:', e)\n"
        "print('ray started:', ray.is_initialized())\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "refused: evaluator service 'nowhere': this process is not connected" in proc.stdout
    assert "ray started: False" in proc.stdout


@pytest.fixture(scope="module")
def service(ray_session):
    with start("svc", n_actors=2) as svc:
        yield svc


def test_cpu_fallback_logged(ray_session, caplog):
    with caplog.at_level(logging.WARNING, logger="dsmnas.trainables.evaluator_service"):
        with start("fallback", gpus_per_actor=0.5) as svc:
            assert svc.device == "cpu" and "num_gpus" not in svc.options
            assert svc.client().evaluate([arch(1)]) == [true_acc(arch(1))]
    assert any("no GPU" in r.message for r in caplog.records)


def test_answers_in_order_and_actor_cache(service):
    archs = [arch(i) for i in range(6)] + [arch(2), arch(0)]
    client = service.client()
    assert client.evaluate(archs) == [true_acc(a) for a in archs]
    stats = client.stats()
    assert sum(s["evaluations"] for s in stats) == 6  # repeats within a batch: once
    assert all(s["evaluations"] > 0 and s["device"] == "cpu" for s in stats)  # both used
    # A fresh client (no local cache) repeating archs: answered by the actors' caches.
    fresh = EvaluatorClient(service.names, service.namespace)
    assert fresh.evaluate(archs[:6]) == [true_acc(a) for a in archs[:6]]
    after = fresh.stats()
    assert sum(s["evaluations"] for s in after) == 6
    assert sum(s["cache_hits"] - b["cache_hits"] for s, b in zip(after, stats)) >= 3
    info = fresh.info()
    assert info["resolution"] == 32 and info["meta"]["checkpoint"] == "fake.pt"
    assert fresh.test_accuracy(arch(3)) == true_acc(arch(3)) - 1.0


def test_client_in_another_process(service):
    import ray

    @ray.remote(num_cpus=0)
    def query(client, archs):
        found = EvaluatorClient.connect("svc", namespace="test-evaluators")
        return client.evaluate(archs), found.names, found.evaluate(archs[:1])

    client = service.client()
    client.evaluate([arch(7)])  # a filled local cache and handles do not travel
    assert len(pickle.dumps(client)) < 1000
    archs = [arch(i) for i in range(10, 14)]
    values, names, one = ray.get(query.remote(client, archs))
    assert values == [true_acc(a) for a in archs] and one == values[:1]
    assert names == ["svc-0", "svc-1"]


def test_killed_actor_is_restarted_and_the_query_retried(ray_session):
    import ray

    with start("restart", evaluator_kwargs={"delay_s": 1.0}) as svc:
        client = svc.client()
        archs = [arch(i) for i in range(5)]
        result = {}
        thread = threading.Thread(target=lambda: result.update(v=client.evaluate(archs)))
        thread.start()
        time.sleep(0.4)  # the call is inside the evaluator now
        ray.kill(svc.handles[0], no_restart=False)
        thread.join(timeout=30)
        assert result["v"] == [true_acc(a) for a in archs]
        (stats,) = client.stats()
        assert stats["restarted"] and stats["evaluations"] == 5  # re-run by the new actor
        # Killed between queries: the next query waits for the restart.
        ray.kill(svc.handles[0], no_restart=False)
        assert client.evaluate([arch(9)]) == [true_acc(arch(9))]


def kill_for_good(handle, within_s: float = 60.0) -> None:
    """Kill an actor so that Ray cannot restart it, and return once it is dead: `ray.kill`
    only sends the kill, and on a busy machine calls made soon after were still served."""
    import time

    import ray

    ray.kill(handle, no_restart=True)
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            ray.get(handle.info.remote(), timeout=within_s)
        except ray.exceptions.RayActorError:
            return
        time.sleep(0.05)
    raise AssertionError(f"actor still answering {within_s} s after ray.kill")


def test_failover_to_another_actor_then_a_clear_error(ray_session):
    with start("failover", n_actors=2) as svc:
        client = svc.client(retries=2)
        kill_for_good(svc.handles[1])
        archs = [arch(i) for i in range(20, 24)]
        assert client.evaluate(archs) == [true_acc(a) for a in archs]
        assert client.retried >= 1
        kill_for_good(svc.handles[0])
        with pytest.raises(RuntimeError, match="failed after 3 attempts"):
            client.evaluate([arch(30)])


def test_required_gpu_on_a_cpu_cluster_times_out(ray_session):
    with pytest.raises(TimeoutError, match="did not start"):
        start("needs-gpu", require_gpu=True, start_timeout_s=1.0)
    with start("needs-gpu") as svc:  # the name was freed
        assert svc.client().evaluate([arch(2)]) == [true_acc(arch(2))]


def test_fitted_predictor_ranks_held_out_archs(tmp_path):
    import numpy as np
    import torch
    from scipy.stats import spearmanr

    from dsmnas.envs.evaluators.fitted import load_fitted
    from dsmnas.trainables.fit_predictor import fit_predictor, sample_archs

    torch.set_num_threads(1)
    out = tmp_path / "fitted.pt"
    metrics = fit_predictor(FakeEvaluator("fake.pt"), 300, str(out), seed=0, epochs=100)
    assert metrics["n_train"] == 240 and metrics["n_held_out"] == 60
    assert metrics["held_out_spearman"] > 0.85
    assert metrics["held_out_rmse"] < metrics["held_out_std"]
    model = load_fitted(str(out))
    assert model.meta["image_size"] == 32 and model.meta["dataset"] == "fake"
    assert model.meta["metrics"] == metrics
    fresh = sample_archs(200, seed=123)  # unseen archs
    pred = model.predict(fresh)
    assert pred.shape == (200,)
    assert spearmanr(pred, [true_acc(a) for a in fresh]).statistic > 0.85
    assert np.allclose(load_fitted(str(out)).predict(fresh[:3]), pred[:3])
    with pytest.raises(ValueError, match="image size 32"):
        model.predict([{**fresh[0], "image_size": 224}])
    bogus = tmp_path / "bogus.pt"
    torch.save({"layers.0.weight": torch.zeros(2)}, bogus)
    for path in (bogus, tmp_path / "text.pt"):
        if not path.exists():
            path.write_text("not a model")
        with pytest.raises(ValueError, match="not a fitted predictor"):
            load_fitted(str(path))


def test_real_subnet_evaluator_through_the_service(ray_session, tmp_path):
    """The default factory serves `SubnetEvaluator`: same numbers as in-process (a randomly
    initialised supernet at 32x32 on a Fashion-MNIST subset; the weights do not matter)."""
    import os

    import torch

    supernet = pytest.importorskip("dsmnas.envs.evaluators.supernet")
    if not os.path.isdir("/usr/share/datasets/fashion-mnist"):
        pytest.skip("Fashion-MNIST (Debian dataset-fashion-mnist) is not installed")
    from dsmnas.trainables.fit_predictor import sample_archs

    torch.set_num_threads(1)
    torch.manual_seed(0)
    checkpoint = supernet.save_checkpoint(
        str(tmp_path / "supernet.pt"), supernet.build_supernet(1.0, 10),
        dict(width_mult=1.0, n_classes=10, dropout=0.0, resolution=32, dataset="fashion-mnist",
             data="fashion-mnist", steps=0, seed=0),
    )
    kwargs = dict(calib_images=100, val_images=200, batch_size=100)
    archs = [supernet.largest_arch(), supernet.smallest_arch(), *sample_archs(2, seed=1)]
    direct = supernet.SubnetEvaluator(checkpoint, **kwargs).evaluate(archs)
    with start_evaluators(checkpoint, cpus_per_actor=CPUS, name="real",
                          namespace="test-evaluators", evaluator_kwargs=kwargs) as svc:
        client = svc.client()
        assert client.evaluate(archs) == direct
        info = client.info()
        assert info["resolution"] == 32 and info["meta"]["dataset"] == "fashion-mnist"
