"""Supernet evaluators served by named Ray actors, and the picklable client that queries them.

The driver starts the service once (`start_evaluators`); every process of the Ray cluster (a
Tune trial, an RLlib EnvRunner) reaches the same actors through an `EvaluatorClient`, which
pickles only the actors' names and namespace and looks the handles up lazily.

Placement: an actor reserves `num_gpus` (fractional, so several actors share one GPU) and one
unit of the custom resource `resource` when the cluster advertises it (cluster.yaml gives each
GPU worker `supernet_evaluator: 4`). On a cluster without GPUs the actors run on CPU, one log
line says so; `require_gpu=True` refuses that fallback and keeps asking for GPUs (an autoscaler
may add GPU nodes), failing with TimeoutError after `start_timeout_s`.

Faults: actors are created with `max_restarts` (default -1: always) and `max_task_retries=-1`,
so Ray restarts a dead actor and re-runs the calls it had in flight. On top of that the client
catches actor errors and retries a failed chunk on the next actor, at most `retries` times,
then raises RuntimeError naming the actors; a query is answered or fails loudly, never lost.

Ray is imported inside functions: importing this module never starts or imports Ray.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any
from envs.errors import ConfigError

logger = logging.getLogger(__name__)

DEFAULT_NAME = "dsmnas-evaluator"
DEFAULT_NAMESPACE = "dsmnas"
DEFAULT_RESOURCE = "supernet_evaluator"

EvaluatorFactory = Callable[..., Any]
"""`factory(checkpoint, data=..., device=..., **evaluator_kwargs)` -> an object with
`evaluate(archs) -> list[float]`, `test_accuracy(arch) -> float`, `resolution` and `meta`
(the interface of `envs.benchmarks.supernet.SubnetEvaluator`)."""


def arch_key(arch: dict) -> str:
    """The canonical form of an OFA arch dict used as a cache key: sorted keys, int values."""
    try:
        return json.dumps({k: [int(v) for v in arch[k]] for k in sorted(arch)})
    except (TypeError, ValueError, AttributeError) as err:
        raise ConfigError(
            f"an architecture must be a dict of integer lists like "
            f"{{'ks': [...20], 'e': [...20], 'd': [...5]}}, got {arch!r}"
        ) from err


def _default_factory(checkpoint, data=None, device="cpu", **kwargs):
    from envs.benchmarks.supernet import SubnetEvaluator

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
        if num_threads:
            import torch

            torch.set_num_threads(int(num_threads))
        factory = factory or _default_factory
        self.checkpoint = str(checkpoint)
        self.device = device
        self.evaluator = factory(checkpoint, data=data, device=device, **(evaluator_kwargs or {}))
        self._cache: dict[str, float] = {}
        self._test_cache: dict[str, float] = {}
        self._evaluations = self._cache_hits = self._calls = 0
        self._eval_time_s = 0.0

    def evaluate(self, archs: Sequence[dict]) -> list[float]:
        self._calls += 1
        keys = [arch_key(a) for a in archs]
        missing: dict[str, dict] = {}
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
        key = arch_key(arch)
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


class EvaluatorNotFoundError(LookupError):
    """No live actor of that name in the namespace (never started, or shut down)."""


def _actor_errors() -> tuple[type[BaseException], ...]:
    from ray import exceptions as rex

    return (rex.RayActorError, rex.ActorDiedError, rex.ActorUnavailableError)


class EvaluatorClient:
    """Queries the named evaluator actors from any process of the cluster.

    Pickles only `names`, `namespace` and the settings; handles are looked up on first use.
    `evaluate` removes repeats and archs already in the local cache, splits the rest across
    the actors (consecutive chunks, starting at a rotating actor so single-arch calls from
    one client spread over all actors) and gathers the answers in order.
    """

    def __init__(
        self,
        names: Sequence[str],
        namespace: str = DEFAULT_NAMESPACE,
        retries: int = 3,
        cache_size: int = 10_000,
        timeout_s: float | None = None,
    ):
        if not names:
            raise ConfigError("EvaluatorClient needs at least one actor name")
        if retries < 0:
            raise ConfigError(f"retries must be >= 0, got {retries!r}")
        self.names = list(names)
        self.namespace = namespace
        self.retries = int(retries)
        self.cache_size = int(cache_size)
        self.timeout_s = timeout_s
        self._init_local()

    @classmethod
    def connect(cls, name: str = DEFAULT_NAME, namespace: str = DEFAULT_NAMESPACE,
                **kwargs) -> EvaluatorClient:
        """A client of the running service started as `start_evaluators(name=name)`: finds
        its actors `{name}-0`, `{name}-1`, ... in `namespace`."""
        import re

        import ray

        pattern = re.compile(rf"^{re.escape(name)}-(\d+)$")
        found = sorted(
            (int(m.group(1)), a["name"])
            for a in ray.util.list_named_actors(all_namespaces=True)
            if a["namespace"] == namespace and (m := pattern.match(a["name"]))
        )
        if not found:
            raise EvaluatorNotFoundError(
                f"no evaluator service {name!r} in namespace {namespace!r}: start it with "
                f"start_evaluators(..., name={name!r}) from the driver first"
            )
        return cls([n for _, n in found], namespace, **kwargs)

    def _init_local(self) -> None:
        self._handles: dict[str, Any] = {}
        self._cache: OrderedDict[str, float] = OrderedDict()
        self._next = 0
        self.retried = 0
        """Chunks re-sent to another actor after an actor error (since this copy was made)."""

    def __getstate__(self) -> dict:
        return {k: getattr(self, k) for k in ("names", "namespace", "retries", "cache_size",
                                               "timeout_s")}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._init_local()

    def _handle(self, i: int):
        import ray

        name = self.names[i]
        if name not in self._handles:
            try:
                self._handles[name] = ray.get_actor(name, namespace=self.namespace)
            except ValueError as err:
                raise EvaluatorNotFoundError(
                    f"no evaluator actor {name!r} in namespace {self.namespace!r}: start the "
                    f"service with start_evaluators() from the driver first"
                ) from err
        return self._handles[name]

    def _call(self, method: str, *args, start: int = 0):
        """One call with failover: on an actor error try the next actor, `retries` times."""
        import ray

        errors = []
        for attempt in range(self.retries + 1):
            i = (start + attempt) % len(self.names)
            try:
                ref = getattr(self._handle(i), method).remote(*args)
                return ray.get(ref, timeout=self.timeout_s)
            except _actor_errors() as err:
                errors.append(f"{self.names[i]}: {type(err).__name__}")
                self._handles.pop(self.names[i], None)
                if attempt < self.retries:
                    self.retried += 1
                    time.sleep(min(0.1 * 2**attempt, 2.0))
            except EvaluatorNotFoundError as err:
                errors.append(str(err))
                if attempt < self.retries:
                    self.retried += 1
        raise RuntimeError(
            f"evaluator call {method!r} failed after {self.retries + 1} attempts "
            f"({'; '.join(errors)})"
        )

    def evaluate(self, archs: Sequence[dict]) -> list[float]:
        """Validation top-1 (%) of each arch, in order."""
        import ray

        keys = [arch_key(a) for a in archs]
        answers: dict[str, float] = {}
        todo: dict[str, dict] = {}
        for key, arch in zip(keys, archs):
            if key in self._cache:
                answers[key] = self._cache[key]
                self._cache.move_to_end(key)
            elif key not in todo:
                todo[key] = arch
        if todo:
            items = list(todo.items())
            size = math.ceil(len(items) / min(len(self.names), len(items)))
            chunks = [items[j:j + size] for j in range(0, len(items), size)]
            starts = [(self._next + j) % len(self.names) for j in range(len(chunks))]
            self._next = (self._next + len(chunks)) % len(self.names)
            refs = []
            for chunk, i in zip(chunks, starts):
                try:
                    refs.append(self._handle(i).evaluate.remote([a for _, a in chunk]))
                except EvaluatorNotFoundError:
                    refs.append(None)  # gone for good: fail over below
            for chunk, i, ref in zip(chunks, starts, refs):
                accs = None
                if ref is not None:
                    try:
                        accs = ray.get(ref, timeout=self.timeout_s)
                    except _actor_errors():
                        self._handles.pop(self.names[i], None)
                if accs is None:
                    self.retried += 1
                    accs = self._call("evaluate", [a for _, a in chunk], start=i + 1)
                for (key, _), acc in zip(chunk, accs):
                    answers[key] = float(acc)
                    self._remember(key, float(acc))
        return [answers[k] for k in keys]

    def _remember(self, key: str, acc: float) -> None:
        self._cache[key] = acc
        self._cache.move_to_end(key)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    def __call__(self, archs: Sequence[dict]) -> list[float]:
        return self.evaluate(archs)

    def test_accuracy(self, arch: dict) -> float:
        """Test top-1 (%) of one arch: for final reports only, never a search's reward."""
        return float(self._call("test_accuracy", arch))

    def info(self) -> dict:
        """resolution, meta and checkpoint of the served supernet, and the actors' device."""
        return self._call("info")

    def stats(self) -> list[dict]:
        """Each actor's `stats()`, in the order of `names`."""
        return [self._call("stats", start=i) for i in range(len(self.names))]


def gpu_fraction(n_actors: int, n_gpus: float) -> float:
    """GPUs per actor so that `n_actors` fit on `n_gpus` whole GPUs: 1/k for the smallest k
    with n_gpus * k >= n_actors (a fractional share must fit on one GPU), at most 1."""
    if n_gpus < 1:
        return 0.0
    return 1.0 / math.ceil(n_actors / int(n_gpus))


def actor_options(
    cluster: dict,
    n_actors: int,
    gpus_per_actor: float | None,
    cpus_per_actor: float,
    resource: str | None,
    require_gpu: bool,
) -> tuple[dict, str]:
    """Ray resource options of each actor and its torch device, for a cluster whose
    `ray.cluster_resources()` is `cluster`. Pure, so placement rules are testable."""
    cluster_gpus = float(cluster.get("GPU", 0))
    if gpus_per_actor is not None and not 0 <= gpus_per_actor:
        raise ConfigError(f"gpus_per_actor must be >= 0 or None, got {gpus_per_actor!r}")
    if gpus_per_actor is not None and gpus_per_actor > 1 and gpus_per_actor != int(gpus_per_actor):
        raise ConfigError(f"gpus_per_actor above 1 must be whole, got {gpus_per_actor!r}")
    if require_gpu and gpus_per_actor == 0:
        raise ConfigError("require_gpu=True contradicts gpus_per_actor=0")
    if gpus_per_actor is None:
        gpus = gpu_fraction(n_actors, cluster_gpus) if cluster_gpus >= 1 else (
            1.0 if require_gpu else 0.0)
    elif cluster_gpus == 0 and not require_gpu:
        gpus = 0.0
    else:
        gpus = float(gpus_per_actor)
    options: dict[str, Any] = {"num_cpus": cpus_per_actor}
    if gpus > 0:
        options["num_gpus"] = gpus
    if resource and float(cluster.get(resource, 0)) > 0:
        options["resources"] = {resource: 1}
    return options, ("cuda" if gpus > 0 else "cpu")


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
) -> EvaluatorService:
    """Start `n_actors` named evaluator actors `{name}-{i}` in `namespace`; call once, from
    the driver, after Ray is initialised (`trainables.ray_utils.ensure_ray`).

    gpus_per_actor: None shares the cluster's GPUs evenly (e.g. 4 actors on 1 GPU: 0.25
        each) or runs on CPU when there are none; a number asks for that many GPUs per actor,
        and also falls back to CPU (one log line) when the cluster has no GPU, unless
        `require_gpu`.
    resource: a custom resource each actor takes one unit of, only if the cluster
        advertises it (None: never).
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


__all__ = [
    "DEFAULT_NAME", "DEFAULT_NAMESPACE", "DEFAULT_RESOURCE", "EvaluatorClient",
    "EvaluatorNotFoundError",
    "EvaluatorService", "SupernetEvaluatorActor", "actor_options", "arch_key", "gpu_fraction",
    "start_evaluators",
]
