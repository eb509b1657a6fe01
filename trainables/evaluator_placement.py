"""Where the supernet evaluator actors go: Ray resource options from the cluster's resources.

An actor reserves `num_gpus` (fractional, so several actors share one GPU) and one unit of the
custom resource `resource` when the cluster advertises it (cluster.yaml gives each GPU worker
`supernet_evaluator: 4`). On a cluster without GPUs the actors run on CPU; `require_gpu=True`
refuses that fallback and keeps asking for GPUs (an autoscaler may add GPU nodes). Pure
functions of `ray.cluster_resources()`, so the rules are testable without a cluster;
`trainables.evaluator_service.start_evaluators` applies them.
"""

from __future__ import annotations

import math
from typing import Any

from dsmnas.envs.errors import ConfigError

DEFAULT_RESOURCE = "supernet_evaluator"
"""The custom resource an evaluator actor takes one unit of, where the cluster has it."""


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


__all__ = ["DEFAULT_RESOURCE", "actor_options", "gpu_fraction"]
