"""Starting Ray the way this project needs it."""

from __future__ import annotations

import logging
import os


def ensure_ray(address: str | None = None, num_cpus: int | None = None) -> None:
    """Connect to `address` (a running cluster), else start a private local instance.

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
    # Ray's and RLlib's start-up warnings (token auth, new API stack, gputil) are noise to
    # someone reading a search's progress.
    for name in ("ray", "ray.rllib", "ray.tune"):
        logging.getLogger(name).setLevel(logging.ERROR)
    kwargs = dict(log_to_driver=False, logging_level=logging.ERROR)
    if address:
        ray.init(address=address, **kwargs)
    else:
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, **kwargs)
