"""Starting Ray the way this project needs it."""

from __future__ import annotations

import logging
import os


def quiet_ray_logs() -> None:
    """Ray's and RLlib's start-up warnings (token auth, new API stack, gputil) are noise to
    someone reading a search's progress: errors only."""
    import ray  # noqa: F401  (its import sets up these loggers; set their levels after it)

    for name in ("ray", "ray.rllib", "ray.tune"):
        logging.getLogger(name).setLevel(logging.ERROR)


def ensure_ray(address: str | None = None, num_cpus: int | None = None) -> None:
    """Connect to `address` (a running cluster; ConfigError if there is none), else start a
    private local instance.

    `address="local"` is used rather than a plain `ray.init()`: a stale cluster file left by
    a killed head node makes the plain call try to connect to a dead cluster.
    """
    import ray

    # Ray's tqdm support replaces builtins.print in the driver once a worker reports a
    # progress bar; code that pickles a reference to print (Tune pickles its callbacks, ours
    # hold a printer) then fails with "it's not the same object as builtins.print".
    os.environ.setdefault("RAY_TQDM_PATCH_PRINT", "0")
    if ray.is_initialized():
        return
    quiet_ray_logs()
    kwargs = dict(log_to_driver=False, logging_level=logging.ERROR)
    if address:
        try:
            ray.init(address=address, **kwargs)
        except ConnectionError as e:
            from dsmnas.envs.errors import ConfigError

            raise ConfigError(
                f"cannot connect to the Ray cluster at {address!r} ({e}); is it running, and "
                "is RAY_AUTH_MODE=token set when the cluster uses token authentication?"
            ) from None
    else:
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, **kwargs)


def build_algo(algo_config):
    """`algo_config.build_algo()`, without starting Ray where the algorithm needs none.

    With no remote EnvRunners, Learners or evaluation EnvRunners, an RLlib algorithm runs
    wholly in the driver process, and RLlib means such a run to need no Ray instance
    (ray-project/ray#32820). Ray 2.60's `EnvRunnerGroup.__init__` still puts its config into
    the object store for the remote EnvRunners it might create, and that one `ray.put` starts
    a local Ray instance: 2-3 s here, and 3 s more when the process exits. Where Ray is not
    running and nothing is remote, that put is skipped (the group keeps the config object,
    which only the creation of remote EnvRunners reads). Nothing else in building, training,
    checkpointing or restoring REINFORCE touches Ray (checked: `ray.is_initialized()` stays
    False through a whole checkpointed search, tests/test_search.py); anything that does
    still starts it as usual.
    """
    from unittest import mock

    import ray

    remote = (
        (algo_config.num_env_runners or 0)
        + (algo_config.num_learners or 0)
        + (algo_config.evaluation_num_env_runners or 0)
    )
    if ray.is_initialized() or remote:
        return algo_config.build_algo()
    with mock.patch.object(ray, "put", lambda value, **_: value):
        return algo_config.build_algo()
