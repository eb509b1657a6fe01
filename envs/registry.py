"""Search spaces as plug-ins: one `SpaceSpec` per space, found by name or import string.

A space is named in settings (`EnvConfig.space`, `--space`) by
- a registered short name: the built-in `nb201` and `mobilenet` (`BUILTIN` below), or a name
  that an installed package declares in the `dsmnas.spaces` entry-point group
  (`[project.entry-points."dsmnas.spaces"] myspace = "mypkg.myspace:SPEC"`);
- an import string `package.module:NAME` naming a `SpaceSpec` (or a function returning one);
- `table:FILE`: your own table of architectures (`envs.benchmarks.table_file`).

Only the name travels in an env config, so every Ray worker and cluster node resolves it again
by importing the module: a plug-in works wherever its module is importable, and nothing has to
be patched into the driver. Ray puts the driver's working directory on its workers' path, and
the driver looks there too (last) for an import string's module, so a plug-in in the folder a
command runs from (`dsmnas search --space examples.toy_space:SPEC` in the repository) resolves
in the driver as in the workers, also from a console script, whose path lacks that folder.
Adding a space is writing its module (its `SearchSpace`, its benchmark and its `SPEC`); a
built-in one adds one line to `BUILTIN`.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import os
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping

from dsmnas import PACKAGES
from dsmnas.envs.errors import ConfigError

if TYPE_CHECKING:
    from dsmnas.envs.benchmarks.base import Benchmark
    from dsmnas.envs.config import EnvConfig
    from dsmnas.envs.objectives import ObjectiveScale
    from dsmnas.envs.spaces.base import SearchSpace

ENTRY_POINT_GROUP = "dsmnas.spaces"
BUILTIN: dict[str, str] = {
    "nb201": "dsmnas.envs.benchmarks.nb201:SPEC",
    "mobilenet": "dsmnas.envs.benchmarks.mobilenet:SPEC",
    "nasbench-graph": "dsmnas.envs.benchmarks.nasbench_graph:SPEC",
    "nasbench-graph-proteins": "dsmnas.envs.benchmarks.nasbench_graph:PROTEINS_SPEC",
    "fcnet": "dsmnas.envs.benchmarks.fcnet:SPEC",
}
SCHEMES: dict[str, str] = {"table": "dsmnas.envs.benchmarks.table_file:spec_for"}
"""Names `SCHEME:ARGUMENT` whose spec a function builds from the argument (`table:FILE`)."""
BUDGETS = ("seconds", "queries")


@dataclass(frozen=True)
class SpaceSpec:
    """Everything the platform needs to know about one search space, declared once.

    Callers ask the spec; nothing outside a space's own module tests which space it is.
    """

    name: str
    """Short name, used in messages and results."""
    space: Callable[[], "SearchSpace"]
    """Builds the `SearchSpace` (encoding, validity, masks, edits, distance, sampling)."""
    benchmark: Callable[["EnvConfig"], "Benchmark"]
    """Builds the benchmark (what a query answers and costs) from an `EnvConfig`; its own
    settings are read as attributes of the config (`cfg.table`). Limits are applied and the
    budget clock started afterwards (`make_benchmark`: the `Benchmark` base class)."""
    settings: type | None = None
    """A dataclass of the space's own env settings (each field declared with
    `envs.settings.setting(default, help)`); its fields become `EnvConfig` keys and flags."""
    env_defaults: Mapping[str, Any] = field(default_factory=dict)
    """`EnvConfig` values for fields left at None (K, M, dataset, budget_queries, limits...)."""
    learner_defaults: Mapping[str, Any] = field(default_factory=dict)
    """DSM-NAS learner settings where this space's paper values differ (lr, entropy)."""
    budget: str = "seconds"
    """What the budget counts: simulated "seconds" (`budget_s`) or charged "queries"
    (`budget_queries`); the other budget field is refused."""
    ablation_grids: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    """The values `dsmnas ablate K|M` runs here, {"K": (...), "M": (...)} (default:
    NAS-Bench-201's, `experiments.settings.K_VALUES` / `M_VALUES`); the space's own K and M
    are the references."""
    tuned: Mapping[str, Any] = field(default_factory=dict)
    """DSM-NAS's K, M, entropy and lr as a validation-only sweep chose them in this space (on
    seeds the reported results do not use), run by the method `dsm-tuned`; empty: none."""
    limit_aliases: Mapping[str, str] = field(default_factory=dict)
    """Setting names that stand for one limit, e.g. {"max_macs_m": "macs_m"}."""
    complete: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    """Fills defaults that depend on other settings (given the merged values, returns the
    values to set where they are None)."""
    description: str = ""
    objectives: Callable[["Benchmark"], "ObjectiveScale"] | None = None
    """The fixed normalisation of the metrics that `--objectives` may name
    (`envs.objectives.ObjectiveScale`, given the built benchmark: from the data, never from
    a run); None: the space refuses `--objectives`."""

    def __post_init__(self):
        if self.budget not in BUDGETS:
            raise ConfigError(f"space {self.name!r}: budget must be one of {BUDGETS}, got {self.budget!r}")
        if self.settings is not None and not dataclasses.is_dataclass(self.settings):
            raise ConfigError(f"space {self.name!r}: settings must be a dataclass, got {self.settings!r}")

    @property
    def option_names(self) -> tuple[str, ...]:
        """The names of the space's own settings."""
        if self.settings is None:
            return ()
        return tuple(f.name for f in dataclasses.fields(self.settings))

    def option_fields(self) -> tuple[dataclasses.Field, ...]:
        return () if self.settings is None else dataclasses.fields(self.settings)

    def options(self, values: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
        """The space's settings, defaults filled in, checked by the settings dataclass."""
        if self.settings is None:
            if values:
                raise ConfigError(f"space {self.name!r} has no settings of its own, got {sorted(values)}")
            return ()
        obj = self.settings(**values)
        return tuple((f.name, getattr(obj, f.name)) for f in dataclasses.fields(obj))


def builtin_names() -> tuple[str, ...]:
    return tuple(BUILTIN)


def space_names() -> tuple[str, ...]:
    """Built-in names and those of installed plug-ins (entry points)."""
    return tuple(dict.fromkeys([*BUILTIN, *_entry_points()]))


def normalize(name: str) -> str:
    """The name as it must travel to other processes: `table:FILE` with FILE absolute."""
    scheme, sep, argument = str(name).partition(":")
    if sep and scheme in SCHEMES and argument:
        return f"{scheme}:{os.path.abspath(os.path.expanduser(argument))}"
    return name


def get_spec(name: str) -> SpaceSpec:
    """The spec registered as `name`, built by a scheme (`table:FILE`), or imported from
    `package.module:NAME`; ConfigError naming the known names otherwise."""
    if not isinstance(name, str) or not name:
        raise ConfigError(f"a search space is a name or 'package.module:NAME', got {name!r}")
    scheme, sep, argument = name.partition(":")
    if sep and scheme in SCHEMES:
        return _import(SCHEMES[scheme], name)(normalize(name))
    return _resolve(name)


def get_space(name: str) -> SearchSpace:
    """The search space of the space named `name` (a registered name or an import string);
    ConfigError listing the known names."""
    return get_spec(name).space()


@functools.lru_cache(maxsize=None)
def _resolve(name: str) -> SpaceSpec:
    target = BUILTIN.get(name) or _entry_points().get(name)
    if target is None and ":" not in name:
        raise ConfigError(
            f"unknown search space {name!r}; allowed: {', '.join(space_names())}, or "
            f"'package.module:NAME' naming a SpaceSpec"
        )
    spec = _import(target or name, name)
    if callable(spec) and not isinstance(spec, SpaceSpec):
        spec = spec()
    if not isinstance(spec, SpaceSpec):
        raise ConfigError(f"search space {name!r}: {target or name} is a {type(spec).__name__}, "
                          f"not a SpaceSpec")
    return spec


def _import(target: str, name: str):
    """The object `module:attr` names (`name`: the space, for messages)."""
    module_name, _, attr = target.partition(":")
    try:
        module = _import_module(module_name)
    except ImportError as e:
        if e.name is not None and e.name.partition(".")[0] in PACKAGES:
            raise ConfigError(
                f"search space {name!r}: {module_name!r} imports {e.name!r}, which dsmnas 0.4 "
                f"moved to 'dsmnas.{e.name}': change the import (and '{e.name}.' in import "
                f"strings) to 'dsmnas.{e.name}'"
            ) from None
        if e.name is not None and module_name.startswith(e.name):
            raise ConfigError(
                f"search space {name!r}: cannot import module {module_name!r} ({e}); is it on "
                f"the Python path of every Ray worker?"
            ) from None
        raise
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ConfigError(f"search space {name!r}: module {module_name!r} has no {attr!r}") from None


def _import_module(module_name: str):
    """`importlib.import_module`, looking in the working directory last when the module is not
    found elsewhere (see the module docstring)."""
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        cwd = os.getcwd()
        on_path = {os.path.abspath(p or os.curdir) for p in sys.path}
        top_level = e.name is not None and (module_name + ".").startswith(e.name + ".")
        if not top_level or cwd in on_path:
            raise
    sys.path.append(cwd)
    importlib.invalidate_caches()
    return importlib.import_module(module_name)


@functools.lru_cache(maxsize=1)
def _entry_points() -> dict[str, str]:
    from importlib.metadata import entry_points

    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}
