"""Several Ray nodes on one machine (`ray.cluster_utils.Cluster`, as in Ray's own tests), laid
out like cluster.yaml: a head with CPU: 0, a CPU worker, and a worker that also carries the
custom resource `supernet_evaluator`.

The cluster runs in a subprocess so that it never meets the session's local Ray
(`ray_session`), which stays usable for the tests after this one. The script prints one JSON
line that the test checks:
(a) a task and an actor asking for `supernet_evaluator` land on that node; search trials
    (one CPU each) land on worker nodes, never on the head;
(b) `run_compare` (random x 4 seeds) on that cluster loses the node of its first trial while
    the trial runs; a fresh worker is added, Tune retries the lost trial (failure_config) and
    every run ends ok.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent(
    r"""
    import json, sys, time

    import ray
    from ray.cluster_utils import Cluster

    from dsmnas.experiments import compare, recorder

    table, out, budget_s = sys.argv[1] or None, sys.argv[2], float(sys.argv[3])
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    evaluator = cluster.add_node(num_cpus=1, resources={"supernet_evaluator": 1})
    cpu_worker = cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False)
    head_id = cluster.head_node.node_id
    workers = {evaluator.node_id: evaluator, cpu_worker.node_id: cpu_worker}

    def here():
        return ray.get_runtime_context().get_node_id()

    @ray.remote(num_cpus=0, resources={"supernet_evaluator": 1})
    def evaluator_task():
        return here()

    @ray.remote(num_cpus=0, resources={"supernet_evaluator": 1})
    class Evaluator:
        def node(self):
            return here()

    placed = {
        "task": ray.get(evaluator_task.remote()),
        "actor": ray.get(Evaluator.remote().node.remote()),
    }

    def actor_node(trial, wait_s=10.0):
        # the trial's actor, from the GCS actor table (no call into the busy actor)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            actor = trial.temporary_state.ray_actor
            if actor is not None:
                info = ray._private.state.state.actor_table(actor._actor_id.hex())
                node = (info or {}).get("Address", {}).get("NodeID")
                if node and info.get("State") == "ALIVE":
                    return node
            time.sleep(0.05)
        return None

    class KillFirstTrialNode:
        def __init__(self, cluster=None, workers=None):
            self.cluster, self.workers = cluster, workers
            self.trial_nodes, self.removed, self.added = [], None, None

        def __reduce__(self):  # Tune pickles its callbacks; the cluster cannot be
            return (KillFirstTrialNode, ())

        def on_trial_start(self, iteration, trials, trial, **info):
            node = actor_node(trial)
            self.trial_nodes.append(node)
            if self.removed is None and node in self.workers:
                self.removed = node
                self.cluster.remove_node(self.workers.pop(node), allow_graceful=False)
                fresh = self.cluster.add_node(num_cpus=1)
                self.workers[fresh.node_id] = fresh
                self.added = fresh.node_id

    killer = KillFirstTrialNode(cluster, workers)
    lines = []

    class KillingRecorder(recorder.RunsRecorder):
        def on_trial_start(self, iteration, trials, trial, **info):
            killer.on_trial_start(iteration, trials, trial, **info)

    recorder.RunsRecorder = KillingRecorder  # run_compare looks it up when it runs
    plan = compare.plan_compare("random", 4, env={"table": table, "budget_s": budget_s})
    t0 = time.monotonic()
    runs = compare.run_compare(plan, out, address=cluster.address, retries=3,
                               printer=lines.append)
    print(json.dumps({
        "head": head_id, "evaluator": evaluator.node_id, "cpu_worker": cpu_worker.node_id,
        "placed": placed, "trial_nodes": killer.trial_nodes, "removed": killer.removed,
        "added": killer.added, "status": runs.status.tolist(),
        "seeds": runs.seed.tolist(), "lines": lines,
        "compare_s": time.monotonic() - t0,
    }))
    ray.shutdown()
    cluster.shutdown()
    """
)


def test_cluster_placement_and_a_lost_node(nb201_data, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_DEDUP_LOGS": "0"}
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, nb201_data.table or "", str(tmp_path / "cmp"),
         str(nb201_data.budget_s(3000))],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    # (a) the custom resource pins evaluators to their node; the head runs nothing
    assert r["placed"] == {"task": r["evaluator"], "actor": r["evaluator"]}
    workers = {r["evaluator"], r["cpu_worker"], r["added"]}
    assert r["trial_nodes"] and all(n in workers for n in r["trial_nodes"])
    assert r["head"] not in r["trial_nodes"]
    # (b) the first trial's node was removed while it ran; its trial was retried elsewhere
    assert r["removed"] == r["trial_nodes"][0] and r["removed"] in (r["evaluator"],
                                                                  r["cpu_worker"])
    assert any("retrying" in line for line in r["lines"]), r["lines"]
    assert r["seeds"] == [0, 1, 2, 3] and r["status"] == ["ok"] * 4, r["lines"]
    runs = (tmp_path / "cmp" / "runs.csv").read_text().splitlines()
    assert len(runs) == 5 and all(",ok," in line for line in runs[1:])
