"""The supernet evaluator service: named Ray actors that hold a `SubnetEvaluator` each.

The driver starts the service once (`start_evaluators`, after `trainables.ray_utils.ensure_ray`;
`experiments/cli.py` does it for `--evaluator-actors N`) and holds it for the command's life;
every process of the Ray cluster (a Tune trial, an RLlib EnvRunner) reaches the same actors by
name through `envs.evaluators.client.EvaluatorClient`. Starting actors lives here, outside
`envs`, because `envs` never starts Ray; the client that only connects lives in `envs` for the
`supernet` benchmark. Placement (GPU shares, the `supernet_evaluator` resource, the CPU
fallback) is `trainables.evaluator_placement`.

Faults: actors are created with `max_restarts` (default -1: always) and `max_task_retries=-1`,
so Ray restarts a dead actor and re-runs the calls it had in flight; the client fails a chunk
over to another actor on top of that. Each actor caches every arch it has scored under the
space's key (`subnet_key`); a restarted actor starts with an empty cache.

Ray is imported inside functions, so that `SupernetEvaluatorActor` is usable as a plain object
and the CLI imports this module without Ray's start-up cost.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

from dsmnas.envs.errors import ConfigError
from dsmnas.envs.evaluators.client import DEFAULT_NAME, DEFAULT_NAMESPACE, EvaluatorClient, subnet_key
from dsmnas.trainables.evaluator_placement import DEFAULT_RESOURCE, actor_options

logger = logging.getLogger(__name__)

EvaluatorFactory = Callable[..., Any]
"""`factory(checkpoint, data=..., device=..., **evaluator_kwargs)` -> an object with
`evaluate(archs) -> list[float]`, `test_accuracy(arch) -> float`, `resolution` and `meta`
(the interface of `envs.evaluators.supernet.SubnetEvaluator`)."""


def _default_factory(checkpoint, data=None, device="cpu", **kwargs):
    from dsmnas.envs.evaluators.supernet import SubnetEvaluator

    return SubnetEvaluator(checkpoint, data=data, device=device, **kwargs)


class SupernetEvaluatorActor:
    """Holds one evaluator and answers `evaluate` with a per-actor cache of every arch it has
    scored (a restarted actor starts with an empty cache). Wrapped by `ray.remote` in
    `start_evaluators`; usable as a plain object too."""

    def __init__(
        self,
        checkpoint: str,
        data: Any = None,
        device: str = "cpu",
        evaluator_kwargs: dict | None = None,
        factory: EvaluatorFactory | None = None,
        num_threads: int | None = None,
    ):
        import torch

        if str(device).startswith("cuda") and not torch.cuda.is_available():
            # placed by a GPU resource that torch cannot see (Ray's fake multi-node
            # cluster, cluster-local.yaml, declares GPUs that are only resources): run on CPU
            logger.warning("evaluator actor: placed for %s, but torch sees no CUDA: CPU",
                           device)
            device = "cpu"
            num_threads = num_threads or 1
        if num_threads:
            torch.set_num_threads(int(num_threads))
        factory = factory or _default_factory
        self.checkpoint = str(checkpoint)
        self.device = device
        self.evaluator = factory(checkpoint, data=data, device=device, **(evaluator_kwargs or {}))
        self._cache: dict[int, float] = {}
        self._test_cache: dict[int, float] = {}
        self._evaluations = self._cache_hits = self._calls = 0
        self._eval_time_s = 0.0

    def evaluate(self, archs: Sequence[dict]) -> list[float]:
        self._calls += 1
        keys = [subnet_key(a) for a in archs]
        missing: dict[int, dict] = {}
        for key, arch in zip(keys, archs):
            if key not in self._cache and key not in missing:
                missing[key] = arch
        self._cache_hits += len(keys) - len(missing)
        if missing:
            start = time.perf_counter()
            accs = self.evaluator.evaluate(list(missing.values()))
            self._eval_time_s += time.perf_counter() - start
            if len(accs) != len(missing):
                raise RuntimeError(
                    f"evaluator returned {len(accs)} accuracies for {len(missing)} archs"
                )
            self._evaluations += len(missing)
            self._cache.update(zip(missing, (float(a) for a in accs)))
        return [self._cache[k] for k in keys]

    def test_accuracy(self, arch: dict) -> float:
        key = subnet_key(arch)
        if key not in self._test_cache:
            self._test_cache[key] = float(self.evaluator.test_accuracy(arch))
        return self._test_cache[key]

    def info(self) -> dict:
        return {
            "resolution": int(self.evaluator.resolution),
            "meta": self.evaluator.meta,
            "checkpoint": self.checkpoint,
            "device": self.device,
        }

    def stats(self) -> dict:
        """Counts since this actor (re)started: archs evaluated, archs answered from the
        cache, calls, seconds spent in the evaluator; `restarted` is True after a restart."""
        restarted = False
        try:
            import ray

            if ray.is_initialized() and ray.get_runtime_context().get_actor_id():
                restarted = ray.get_runtime_context().was_current_actor_reconstructed
        except Exception:  # a plain object outside Ray
            pass
        return {
            "evaluations": self._evaluations,
            "cache_hits": self._cache_hits,
            "cache_size": len(self._cache),
            "calls": self._calls,
            "eval_time_s": self._eval_time_s,
            "device": self.device,
            "pid": os.getpid(),
            "restarted": restarted,
        }


class EvaluatorService:
    """The driver's side of the service: the actor handles, `client()`, `stats()`,
    `shutdown()`. Also a context manager that shuts the actors down on exit."""

    def __init__(self, names: list[str], namespace: str, handles: list, device: str,
                 options: dict):
        self.names = names
        self.namespace = namespace
        self.handles = handles
        self.device = device
        self.options = options

    def client(self, **kwargs) -> EvaluatorClient:
        return EvaluatorClient(self.names, self.namespace, **kwargs)

    def stats(self) -> list[dict]:
        import ray

        return ray.get([h.stats.remote() for h in self.handles])

    def shutdown(self) -> None:
        """Kill the actors for good (no restart); their names are free again."""
        import ray

        for handle in self.handles:
            try:
                ray.kill(handle, no_restart=True)
            except Exception:  # already gone
                pass
        self.handles = []

    def __enter__(self) -> EvaluatorService:
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()


def start_evaluators(
    checkpoint: str,
    n_actors: int = 1,
    gpus_per_actor: float | None = None,
    cpus_per_actor: float = 1,
    name: str = DEFAULT_NAME,
    namespace: str = DEFAULT_NAMESPACE,
    data: Any = None,
    evaluator_kwargs: dict | None = None,
    resource: str | None = DEFAULT_RESOURCE,
    require_gpu: bool = False,
    max_restarts: int = -1,
    factory: EvaluatorFactory | None = None,
    start_timeout_s: float = 600.0,
    wait_for_resource_s: float = 0.0,
) -> EvaluatorService:
    """Start `n_actors` named evaluator actors `{name}-{i}` in `namespace`; call once, from
    the driver, after Ray is initialised (`trainables.ray_utils.ensure_ray`).

    gpus_per_actor: None shares the cluster's GPUs evenly (e.g. 4 actors on 1 GPU: 0.25
        each) or runs on CPU when there are none; a number asks for that many GPUs per actor,
        and also falls back to CPU (one log line) when the cluster has no GPU, unless
        `require_gpu`.
    resource: a custom resource each actor takes one unit of, only if the cluster
        advertises it (None: never).
    wait_for_resource_s: on a cluster that does not advertise `resource` yet, ask its
        autoscaler for one unit per actor (`ray.autoscaler.sdk.request_resources`) and wait
        up to this long for a node that carries it, then place the actors on the grown
        cluster; ConfigError if none came. 0: take the cluster as it is now (a private
        local Ray, or a fixed cluster without the resource: the actors run anywhere).
    require_gpu: never fall back to CPU; the actors wait for GPUs (an autoscaler may add
        them) and TimeoutError is raised if they have not started after `start_timeout_s`.
    data, evaluator_kwargs, factory: passed on to build each actor's evaluator, see
        `EvaluatorFactory` (default: `SubnetEvaluator`). `data` is pickled to every actor:
        prefer a path or None over arrays.
    Returns once every actor has built its evaluator (RuntimeError with the cause if one
    could not); raises ValueError if an actor of that name is already running.
    """
    import ray

    if not ray.is_initialized():
        raise RuntimeError(
            "Ray is not initialised: call trainables.ray_utils.ensure_ray() before "
            "start_evaluators()"
        )
    if n_actors < 1:
        raise ConfigError(f"n_actors must be >= 1, got {n_actors!r}")
    if resource and wait_for_resource_s > 0:
        _wait_for_resource(resource, n_actors, wait_for_resource_s)
    options, device = actor_options(
        ray.cluster_resources(), n_actors, gpus_per_actor, cpus_per_actor, resource, require_gpu
    )
    if device == "cpu" and (gpus_per_actor or 0) > 0:
        logger.warning("no GPU in the Ray cluster: %d supernet evaluator actor(s) run on CPU",
                       n_actors)
    elif device == "cpu":
        logger.info("supernet evaluator actors run on CPU (the cluster has no GPU)")
    remote_cls = ray.remote(SupernetEvaluatorActor)
    names = [f"{name}-{i}" for i in range(n_actors)]
    threads = max(1, int(cpus_per_actor)) if device == "cpu" else None
    handles = []
    try:
        for actor_name in names:
            handles.append(
                remote_cls.options(
                    name=actor_name,
                    namespace=namespace,
                    max_restarts=max_restarts,
                    max_task_retries=-1,
                    # Outside any Tune trial's placement group, whoever calls this.
                    scheduling_strategy="DEFAULT",
                    **options,
                ).remote(checkpoint, data, device, evaluator_kwargs, factory, threads)
            )
    except ValueError as err:  # name taken
        EvaluatorService(names, namespace, handles, device, options).shutdown()
        raise ConfigError(
            f"evaluator actor name {actor_name!r} is taken in namespace {namespace!r}: shut "
            f"the running service down or pick another name ({err})"
        ) from err
    service = EvaluatorService(names, namespace, handles, device, options)
    try:
        ray.get([h.info.remote() for h in handles], timeout=start_timeout_s)
    except ray.exceptions.GetTimeoutError as err:
        service.shutdown()
        raise TimeoutError(
            f"{n_actors} evaluator actor(s) asking for {options} did not start within "
            f"{start_timeout_s} s; cluster resources: {ray.cluster_resources()}"
        ) from err
    except ray.exceptions.RayActorError as err:
        service.shutdown()
        raise RuntimeError(f"an evaluator actor failed to start: {err}") from err
    return service


def _wait_for_resource(resource: str, n_actors: int, wait_s: float, poll_s: float = 0.5) -> None:
    """Return once the cluster advertises `resource`, having asked its autoscaler for
    `n_actors` units of it; ConfigError after `wait_s` seconds without it. The placement
    (GPU shares included) is then read off the nodes that came, as on a fixed cluster."""
    import ray
    from ray.autoscaler.sdk import request_resources

    if float(ray.cluster_resources().get(resource, 0)) > 0:
        return
    request_resources(bundles=[{resource: 1}] * n_actors)
    deadline = time.monotonic() + wait_s
    try:
        while float(ray.cluster_resources().get(resource, 0)) <= 0:
            if time.monotonic() > deadline:
                raise ConfigError(
                    f"no node of the Ray cluster carries {resource!r} after {wait_s:g} s "
                    f"(cluster resources: {_resource_names(ray.cluster_resources())}): the "
                    f"evaluator actors need a node type with it, as cluster.yaml's gpu_worker; "
                    f"--evaluator-wait 0 runs them on any node")
            time.sleep(poll_s)
    finally:
        request_resources(bundles=[])  # the actors hold their node from now on


def _resource_names(resources: dict) -> str:
    return ", ".join(sorted(k for k in resources if not k.startswith("node:"))) or "none"


__all__ = ["EvaluatorFactory", "EvaluatorService", "SupernetEvaluatorActor", "start_evaluators"]
