"""dsmnas: DSM-NAS as a Gymnasium environment and RLlib policy, with Ray Tune experiments.

This file is the package `dsmnas` itself: pyproject.toml maps the package to the repository's
root folder (`package-dir = {"dsmnas" = "."}`), so the four packages there install as
`dsmnas.envs`, `dsmnas.policies`, `dsmnas.trainables` and `dsmnas.experiments`, and
`pip install` adds one top-level name. A folder of yours called `envs/` or `experiments/`, or a
PyPI package of that name, can no longer take their place. Each of the four refuses to be
imported under its bare name (see `_guard`), so no module is ever loaded twice.
"""

from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("dsmnas")
except _metadata.PackageNotFoundError:  # a source tree that was never installed
    __version__ = "unknown"

PACKAGES = ("envs", "policies", "trainables", "experiments")
"""The subpackages, each a folder at the repository's root."""


def _guard(name: str) -> None:
    """Refuse a subpackage imported under its bare name (`import envs` from the repository's
    root, where the folder is on sys.path): it would be a second copy of `dsmnas.<name>`."""
    if not name.startswith("dsmnas."):
        raise ImportError(
            f"{name!r} is imported by its bare name: since dsmnas 0.4 it is 'dsmnas.{name}' "
            f"(write 'from dsmnas.{name} import ...', and 'dsmnas.{name}.MODULE:NAME' in "
            f"import strings)",
            name=name,
        )
