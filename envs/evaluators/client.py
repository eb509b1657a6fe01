"""The client of the supernet evaluator service: connects to named Ray actors, never starts any.

The service itself (the actors, `start_evaluators`, where actors are placed) is
`trainables.evaluator_service`; the driver starts it once. This client stays in `envs` because
the `supernet` benchmark builds it from `evaluator_service=<name>` in whatever process the env
lives in (a Tune trial, an RLlib EnvRunner), and `envs` may not import `trainables`. It only
looks actors up by name and calls them: Ray is imported inside its methods (importing this
module imports no Ray), and `connect` refuses to run in a process that is not connected to a
Ray cluster rather than let Ray start a local instance, which would hold no actors anyway.

The client pickles only the actors' names, namespace and its settings, and looks the handles
up lazily. Faults: the actors are created with `max_restarts=-1` and `max_task_retries=-1`, so
Ray restarts a dead actor and re-runs the calls it had in flight; on top of that the client
catches actor errors and retries a failed chunk on the next actor, at most `retries` times,
then raises RuntimeError naming the actors; a query is answered or fails loudly, never lost.

Caches (this client's and each actor's) are keyed by `subnet_key`: the MobileNet-like space's
own key (`MobileNetSpace.key`), the same one the benchmark's budget clock uses.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from dsmnas.envs.errors import ConfigError
from dsmnas.envs.spaces.mobilenet import MobileNetSpace

DEFAULT_NAME = "dsmnas-evaluator"
DEFAULT_NAMESPACE = "dsmnas"
_SPACE = MobileNetSpace()


def subnet_key(arch: dict) -> int:
    """The space's key of an `ofa` subnet dict: `MobileNetSpace.key(from_ofa(arch))`. Slots
    beyond a unit's depth are not part of the subnet and do not change it; ConfigError for a
    malformed dict."""
    try:
        return _SPACE.key(_SPACE.from_ofa(arch))
    except ConfigError:
        raise
    except (TypeError, ValueError, AttributeError) as err:
        raise ConfigError(
            f"an architecture must be an ofa subnet dict of integer lists like "
            f"{{'ks': [...20], 'e': [...20], 'd': [...5]}}, got {arch!r}"
        ) from err


class EvaluatorNotFoundError(ConfigError, LookupError):
    """No live actor of that name in the namespace (never started, or shut down), or no Ray
    cluster to look in."""


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

        if not ray.is_initialized():  # list_named_actors would start a local Ray: no actors
            raise EvaluatorNotFoundError(
                f"evaluator service {name!r}: this process is not connected to a Ray cluster; "
                f"start the service with start_evaluators(..., name={name!r}) from the driver "
                f"(`--evaluator-actors N`) after ensure_ray()"
            )
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
        self._cache: OrderedDict[int, float] = OrderedDict()
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

        keys = [subnet_key(a) for a in archs]
        answers: dict[int, float] = {}
        todo: dict[int, dict] = {}
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

    def _remember(self, key: int, acc: float) -> None:
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


__all__ = [
    "DEFAULT_NAME", "DEFAULT_NAMESPACE", "EvaluatorClient", "EvaluatorNotFoundError", "subnet_key",
]
