"""cluster-local.yaml on Ray's fake multi-node provider: an autoscaling cluster on one machine,
driven through the `dsmnas` CLI as a user would drive it.

One cluster for the module (its head starts in ~5 s; each fake node is a local raylet that
joins ~5-10 s after the autoscaler sees demand). It is started with its own --temp-dir and
port, never as the machine's default cluster, and torn down by killing only the processes
whose command line names its temp dir (and their children): `ray stop` would stop every Ray
on the machine. The test copy of the config has a 12 s idle timeout, so that workers left
idle by one test go away before the next (the scale-down test watches them go).

- scale-up: a compare whose 4 one-CPU trials find no CPU (the head has none) makes the
  autoscaler start cpu_workers; every run ends ok; no gpu_worker starts for them.
- GPU placement: 2 supernet evaluator actors (`--evaluator-actors 2`) ask for the resource
  `supernet_evaluator`, which only the gpu_worker carries: one starts, both actors run on it
  (on CPU: its GPU is only a resource), the search trial runs on a cpu_worker.
- scale-down: idle workers leave after the idle timeout, not before.
- node loss: the cpu_worker of a running trial is killed after its first Tune checkpoint (a
  spot reclaim); the trial goes on from that checkpoint on another node; the history equals
  the calm run's byte for byte.
- driver loss: the compare's driver is killed mid-way; the same command with --resume ends
  the comparison without rerunning the runs that were ok.
- bad input: `--address auto` with no cluster; a cluster with no `supernet_evaluator`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
IDLE_TIMEOUT_S = 12.0
UPDATE_INTERVAL_S = 1
STOP_PASSES = 10
"""How many kill passes `FakeCluster.stop` makes at most (see there)."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def kill_processes_naming(text: str) -> int:
    """SIGKILL every process whose command line contains `text`, with its descendants
    (Ray's agents and workers rename themselves, e.g. `ray::DashboardAgent`), sparing this
    process and its ancestors. Returns how many were killed."""
    me = psutil.Process()
    spare = {me.pid, *(p.pid for p in me.parents())}
    doomed: dict[int, psutil.Process] = {}
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if proc.pid not in spare and any(text in a for a in proc.info["cmdline"] or ()):
                doomed[proc.pid] = proc
                doomed.update((c.pid, c) for c in proc.children(recursive=True))
        except psutil.Error:
            pass
    for proc in doomed.values():
        try:
            proc.kill()
        except psutil.Error:
            pass
    return len(doomed)


class FakeCluster:
    """cluster-local.yaml (with `edit` applied to a copy) started on this machine."""

    def __init__(self, edit=None):
        # short: Ray's socket paths under the temp dir must stay under 107 characters
        self.temp_dir = Path(tempfile.mkdtemp(prefix="dsmnas-as-", dir="/tmp"))
        self.port = _free_port()
        from ray._private.services import get_node_ip_address

        ip = get_node_ip_address()  # where the fake nodes' raylets will say they are
        self.address = f"{ip}:{self.port}"
        config = yaml.safe_load((ROOT / "cluster-local.yaml").read_text())
        config["idle_timeout_minutes"] = IDLE_TIMEOUT_S / 60
        # the fake nodes join the head at <this machine's IP>:6379 unless told otherwise
        config["provider"]["gcs_address"] = self.address
        if edit:
            edit(config)
        self.config_path = self.temp_dir / "cluster.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_DEDUP_LOGS": "0"}
        self.env.pop("RAY_ADDRESS", None)
        self.ip = ip

    def start(self) -> None:
        env = {**self.env, "RAY_FAKE_CLUSTER": "1",
               "AUTOSCALER_UPDATE_INTERVAL_S": str(UPDATE_INTERVAL_S)}
        proc = subprocess.run(
            [sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--num-cpus=0",
             f"--node-ip-address={self.ip}", f"--port={self.port}",
             f"--dashboard-port={_free_port()}", "--include-dashboard=false",
             "--disable-usage-stats", f"--temp-dir={self.temp_dir}",
             f"--autoscaling-config={self.config_path}"],
            env=env, capture_output=True, text=True, timeout=180)
        assert proc.returncode == 0, proc.stderr[-3000:]

    def stop(self) -> None:
        """Kill the cluster's processes. A process started while the last pass was killing
        (a raylet's new worker, a node the autoscaler was launching) escapes that pass: pass
        again until one finds none, at most STOP_PASSES times."""
        for _ in range(STOP_PASSES):
            if not kill_processes_naming(str(self.temp_dir)):
                break
            time.sleep(0.5)
        shutil.rmtree(self.temp_dir, ignore_errors=True)

    def nodes(self) -> list[dict]:
        """Every node the cluster has had: type, alive, joined/left (epoch seconds). Read
        from the GCS in a subprocess: Ray reads RAY_AUTH_MODE once per process."""
        script = textwrap.dedent("""
            import json, sys
            from ray._raylet import GcsClient
            infos = GcsClient(address=sys.argv[1]).get_all_node_info(timeout=10).values()
            print(json.dumps([{"id": i.node_id.hex(), "type": i.node_type_name or "head",
                               "alive": i.state == 0, "joined": i.start_time_ms / 1000,
                               "left": i.end_time_ms / 1000 or None} for i in infos]))
        """)
        proc = subprocess.run([sys.executable, "-c", script, self.address], env=self.env,
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr[-2000:]
        return json.loads(proc.stdout.strip().splitlines()[-1])

    def node_types(self, alive_only: bool = False) -> dict[str, str]:
        return {n["id"]: n["type"] for n in self.nodes() if n["alive"] or not alive_only}

    def actors(self) -> list[dict]:
        """Every actor the cluster has had: class, node id, state (from the GCS)."""
        script = textwrap.dedent("""
            import json, sys, ray
            ray.init(address=sys.argv[1], log_to_driver=False, logging_level="ERROR")
            print(json.dumps([{"cls": a["ActorClassName"], "node": a["Address"]["NodeID"],
                               "state": a["State"], "pid": a.get("Pid")}
                              for a in ray._private.state.state.actor_table(None).values()]))
        """)
        proc = subprocess.run([sys.executable, "-c", script, self.address], env=self.env,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr[-2000:]
        return json.loads(proc.stdout.strip().splitlines()[-1])

    def wait_idle(self, timeout_s: float = 120.0) -> float:
        """Wait until no worker node is alive; the seconds it took."""
        t0 = time.monotonic()
        while any(n["alive"] and n["type"] != "head" for n in self.nodes()):
            assert time.monotonic() - t0 < timeout_s, self.nodes()
            time.sleep(1)
        return time.monotonic() - t0

    def dsmnas(self, *args: str, timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-W", "ignore", "-m", "dsmnas.experiments.cli",
                               *args], env=self.env, capture_output=True, text=True,
                              timeout=timeout, **kwargs)


@pytest.fixture(scope="module")
def cluster():
    c = FakeCluster()
    try:
        c.start()
        yield c
    finally:
        c.stop()
    assert kill_processes_naming(str(c.temp_dir)) == 0


def _compare_args(nb201_data, out, seeds=2, extra=()):
    table = ["--table", nb201_data.table] if nb201_data.table else []
    return ["compare", "--methods", "dsm,random", "--seeds", str(seeds), "--population", "1",
            "--budget", str(nb201_data.budget_s(3000)), *table, "--out", str(out), *extra]


def test_address_auto_with_no_cluster_is_one_line(tmp_path):
    # Hermetic: "auto" would otherwise find any Ray running on this machine (someone else's).
    script = textwrap.dedent("""
        import sys
        import ray._private.services as services
        def no_gcs():
            return []
        no_gcs.cache_clear = lambda: None
        services.find_gcs_addresses = no_gcs
        services.find_bootstrap_address = lambda temp_dir: None
        from dsmnas.experiments.cli import main
        sys.exit(main(sys.argv[1:]))
    """)
    env = {**os.environ}
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.run([sys.executable, "-W", "ignore", "-c", script, "compare", "--methods",
                           "random", "--seeds", "1", "--address", "auto", "--out",
                           str(tmp_path / "x")], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot connect to the Ray cluster at 'auto'" in lines[0], lines


def test_scale_up_starts_cpu_workers_for_pending_trials(cluster, nb201_data, tmp_path):
    assert cluster.node_types(alive_only=True) == {cluster.nodes()[0]["id"]: "head"}
    t0 = time.time()
    proc = cluster.dsmnas(*_compare_args(nb201_data, tmp_path / "cmp"), "--address",
                          cluster.address)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = pd.read_csv(tmp_path / "cmp" / "runs.csv")
    assert len(runs) == 4 and (runs["status"] == "ok").all()
    launched = [n for n in cluster.nodes() if n["joined"] > t0]
    assert sum(n["type"] == "cpu_worker" for n in launched) >= 2, launched
    # Ray only ranks a GPU node type last for CPU-only demand (AUTOSCALER_CONSERVE_GPU_NODES):
    # when cpu_worker launches lag behind the pending trials it may start the gpu_worker for
    # its CPUs too (seen in CI), so trials run on worker nodes, never on the head
    types = cluster.node_types()
    trials = [a for a in cluster.actors() if a["cls"] == "ImplicitFunc"]
    assert trials and "cpu_worker" in {types[a["node"]] for a in trials}, trials
    assert {types[a["node"]] for a in trials} <= {"cpu_worker", "gpu_worker"}, trials


def test_scale_down_after_the_idle_timeout(cluster):
    alive = [n for n in cluster.nodes() if n["alive"] and n["type"] != "head"]
    if not alive:  # the previous test's nodes are gone already: start one to watch go
        pytest.skip("no idle worker to watch (the scale-up test did not leave one)")
    last_busy = time.time()  # at most: the scale-up test's trials ended before this
    cluster.wait_idle(timeout_s=IDLE_TIMEOUT_S + 60)
    left = {n["id"]: n["left"] for n in cluster.nodes()}
    for node in alive:
        # gone, and not before it had been idle for the timeout (measured from its
        # last trial's end, which was before `last_busy`)
        assert left[node["id"]] is not None
        assert left[node["id"]] <= last_busy + IDLE_TIMEOUT_S + 30
    assert cluster.node_types(alive_only=True) == {
        n["id"]: "head" for n in cluster.nodes() if n["type"] == "head"}


@pytest.fixture(scope="module")
def tiny_supernet(tmp_path_factory):
    pytest.importorskip("ofa")
    from tests.test_supernet import TINY, _idx_folder
    from dsmnas.trainables.supernet import train_supernet

    data = _idx_folder(tmp_path_factory.mktemp("idx"))
    return train_supernet(data, str(tmp_path_factory.mktemp("supernet")), progress=None,
                          seed=0, **TINY)


def test_evaluator_actors_start_a_gpu_worker_and_run_there(cluster, tiny_supernet, tmp_path):
    cluster.wait_idle()
    t0 = time.time()
    proc = cluster.dsmnas(
        "compare", "--space", "mobilenet", "--methods", "random", "--seeds", "1",
        "--set", "env.evaluator=supernet", "--set", f"env.checkpoint={tiny_supernet}",
        "--set", "env.budget_queries=4", "--evaluator-actors", "2",
        "--address", cluster.address, "--out", str(tmp_path / "cmp"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (pd.read_csv(tmp_path / "cmp" / "runs.csv")["status"] == "ok").all()
    types = cluster.node_types()
    launched = [n["type"] for n in cluster.nodes() if n["joined"] > t0]
    assert launched.count("gpu_worker") == 1, launched
    actors = [a for a in cluster.actors() if a["pid"] and a["node"] in types]
    evaluators = [a for a in actors if a["cls"] == "SupernetEvaluatorActor"]
    trials = [a for a in actors if a["cls"] == "ImplicitFunc"
              and a["node"] in {n["id"] for n in cluster.nodes() if n["joined"] > t0}]
    assert len(evaluators) == 2 and {types[a["node"]] for a in evaluators} == {"gpu_worker"}
    assert trials and {types[a["node"]] for a in trials} == {"cpu_worker"}, trials


def test_a_cluster_without_the_evaluator_resource_is_one_line(tiny_supernet, tmp_path):
    def no_gpu_worker(config):
        del config["available_node_types"]["gpu_worker"]

    bare = FakeCluster(no_gpu_worker)
    try:
        bare.start()
        proc = bare.dsmnas(
            "search", "--space", "mobilenet", "--evaluator", "supernet", "--checkpoint",
            tiny_supernet, "--budget-queries", "4", "-K", "2", "--evaluator-actors", "1",
            "--evaluator-wait", "8", "--address", bare.address, "--out", str(tmp_path / "s"),
            "--quiet")
    finally:
        bare.stop()
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "no node of the Ray cluster carries 'supernet_evaluator'" in \
        lines[0], lines
    assert kill_processes_naming(str(bare.temp_dir)) == 0


def _history(out: Path, name: str) -> bytes:
    return (out / "histories" / name).read_bytes()


def test_a_lost_node_resumes_its_trial_from_the_checkpoint(cluster, nb201_data, tmp_path):
    """The spot reclaim: the node of a running dsm trial is killed after the trial's first
    Tune checkpoint; Tune retries the trial on another node from that checkpoint."""
    args = ["compare", "--methods", "dsm", "--seeds", "1", "--first-seed", "3",
            "--population", "1", "--budget", str(nb201_data.budget_s(25_000)),
            *(["--table", nb201_data.table] if nb201_data.table else []),
            "--reports", "20", "--checkpoint-reports", "3", "--address", cluster.address]
    calm = cluster.dsmnas(*args, "--out", str(tmp_path / "calm"))
    assert calm.returncode == 0, calm.stderr[-3000:]

    out = tmp_path / "lost"
    proc = subprocess.Popen([sys.executable, "-W", "ignore", "-m", "dsmnas.experiments.cli",
                             *args, "--out", str(out)], env=cluster.env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    killed = None
    try:
        deadline = time.monotonic() + 240
        while killed is None and proc.poll() is None and time.monotonic() < deadline:
            # the first checkpoint of the trial: Tune writes it under OUT/tune/<exp>/<trial>/
            if list((out / "tune").glob("*/*/checkpoint_*")):
                killed = _kill_trial_node(cluster)
            time.sleep(0.2)
        stdout, stderr = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert killed, "the trial ended before its first checkpoint"
    assert proc.returncode == 0, stderr[-3000:]
    assert "retrying" in stdout, stdout
    assert (pd.read_csv(out / "runs.csv")["status"] == "ok").all()
    assert _history(out, "dsm-3.csv") == _history(tmp_path / "calm", "dsm-3.csv")
    progress = pd.concat(pd.read_csv(p) for p in (out / "tune").glob("*/*/progress.csv"))
    fractions = progress.loc[progress["report"] == "progress", "budget_fraction"]
    # went on from the checkpoint: the first milestone was reported once, not twice
    assert (fractions < 0.1).sum() == 1, fractions.tolist()


def _kill_trial_node(cluster) -> str | None:
    """Kill the raylet (and so every process) of the cpu_worker running a trial, as a spot
    reclaim would: the node id it had."""
    types = cluster.node_types(alive_only=True)
    trials = [a for a in cluster.actors() if a["cls"] == "ImplicitFunc"
              and a["state"] == "ALIVE" and types.get(a["node"]) == "cpu_worker"]
    if not trials:
        return None
    node = trials[0]["node"]
    # the fake provider starts each node with its id as RAY_OVERRIDE_NODE_ID_FOR_TESTING;
    # the raylet's command line names it
    assert kill_processes_naming(f"--node_id={node}") > 0
    return node


def test_a_killed_driver_resumes_without_rerunning_ok_runs(cluster, nb201_data, tmp_path):
    out = tmp_path / "cmp"
    args = [*_compare_args(nb201_data, out, seeds=3, extra=("--max-concurrent", "2")),
            "--address", cluster.address]
    proc = subprocess.Popen([sys.executable, "-W", "ignore", "-m", "dsmnas.experiments.cli",
                             *args], env=cluster.env, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            runs = out / "runs.csv"
            if runs.exists() and (pd.read_csv(runs)["status"] == "ok").sum() >= 2:
                break
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and any child it started
    finally:
        proc.wait(timeout=30)
    first = pd.read_csv(out / "runs.csv")
    ok_before = {f"{m}-{s}" for m, s in first.loc[first["status"] == "ok", ["method", "seed"]]
                 .itertuples(index=False)}
    assert 2 <= len(ok_before) < 6, first
    before = set((out / "tune").glob("*/"))
    histories = {p.name: p.read_bytes() for p in (out / "histories").glob("*.csv")}
    resumed = cluster.dsmnas(*args, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resume: {len(ok_before)} of 6 planned runs are already ok" in resumed.stdout
    runs = pd.read_csv(out / "runs.csv")
    assert len(runs) == 6 and (runs["status"] == "ok").all()
    # the ok runs were not run again: no trial of the resumed experiment is one of them,
    # and their histories are unchanged
    (resumed_exp,) = set((out / "tune").glob("*/")) - before
    rerun = {d.name.split("_")[0] for d in resumed_exp.iterdir() if d.is_dir()}
    assert rerun == {f"{m}-{s}" for m in ("dsm", "random") for s in range(3)} - ok_before
    for name in ok_before:
        assert (out / "histories" / f"{name}.csv").read_bytes() == histories[f"{name}.csv"]
