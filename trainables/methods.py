"""Every search method by its command-line name, behind one call: `run_method`.

A method spends the budget of the same `DSMNAS-v0` benchmark and clock (env settings from
`EnvConfig`) and returns a `SearchResult` (answer, queries, simulated and wall time, one history
row per query). Registry entries (`Method`) are "module:name" strings, imported only when
used, so adding a method is adding one file and one entry here. Each function has the
signature `fn(env_config: EnvConfig, settings: dict, progress) -> SearchResult`;
`check_method` refuses, before Ray starts, settings a method does not have (or of the wrong
type) and spaces or budgets it cannot run in.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from dsmnas.envs import EnvConfig
from dsmnas.envs.errors import ConfigError
from dsmnas.envs.settings import parse_settings

if TYPE_CHECKING:  # light on purpose: `dsmnas compare --help` lists the methods
    from dsmnas.trainables.search import SearchResult


@dataclass(frozen=True)
class Method:
    """One registered method: what runs it, what it accepts, where it cannot run."""

    run: str
    """"module:function" with the signature `fn(env_config, settings, progress)`."""
    description: str
    """One line for --help."""
    settings: tuple[str, ...] = ()
    """"module:Class" settings dataclasses whose fields are its settings (checked, with their
    types, before Ray starts)."""
    check: str | None = None
    """"module:function" `fn(env_config)` raising ConfigError where the method cannot run
    (a space it does not support, a budget kind it cannot split)."""
    population: str | None = None
    """"module:function" `fn(env_config, settings, seeds, progress) -> list[SearchResult]`
    running the searches of `seeds` as one population (one batch in one process), or None."""
    workers: bool = False
    """Whether it runs over N parallel workers (`EnvConfig.workers` > 1): it proposes each
    query knowing only the results finished by the time a worker takes it. A method that
    does not would read results from the simulated future, so it is refused there."""
    population_check: str | None = None
    """"module:function" `fn(env_config, settings) -> str | None` (light: called before Ray
    starts): why these settings cannot run as a population (then the searches run one by
    one), None when they can."""
    objectives: bool = False
    """Whether it has a multi-objective form (`EnvConfig.objectives`, `--objectives`): its
    answer is then the front of what it visited (`envs.objectives`). One that has none is
    refused there."""


_LEARNER = "dsmnas.trainables.search:LearnerSettings"
_POPULATION_CHECK = "dsmnas.trainables.learner:population_refusal"


def _variant_population(name: str) -> dict[str, str]:
    return {"population": f"dsmnas.trainables.variants:population_{name}",
            "population_check": _POPULATION_CHECK}


METHODS: dict[str, Method] = {
    "dsm": Method("dsmnas.trainables.search:run_dsm", "DSM-NAS, the paper's method (REINFORCE, GNN+LSTM)", (_LEARNER,),
                  population="dsmnas.trainables.population:run_dsm_population",
                  population_check=_POPULATION_CHECK, objectives=True),
    "random": Method("dsmnas.trainables.searchers.random_search:run_random", "random search over the whole space",
                     ("dsmnas.trainables.searchers.random_search:RandomSettings",), workers=True,
                     objectives=True),
    "reinforce": Method("dsmnas.trainables.searchers.reinforce:run_reinforce", "REINFORCE, NAS-Bench-201's RL baseline (no RLlib)",
                        ("dsmnas.trainables.searchers.reinforce:ReinforceSettings",),
                        "dsmnas.trainables.searchers.reinforce:check_reinforce"),
    "evolution": Method("dsmnas.trainables.searchers.evolution:run_evolution", "regularized evolution (Real et al. 2019), NAS-Bench-201's R-EA",
                        ("dsmnas.trainables.searchers.evolution:EvolutionSettings",),
                        "dsmnas.trainables.searchers.evolution:check_evolution", workers=True,
                        objectives=True),
    "local": Method("dsmnas.trainables.searchers.local_search:run_local", "local search with restarts (White et al., UAI 2021)",
                    ("dsmnas.trainables.searchers.local_search:LocalSettings",),
                    "dsmnas.trainables.searchers.local_search:check_local", workers=True,
                    objectives=True),
    "nsga2": Method("dsmnas.trainables.searchers.nsga2:run_nsga2", "NSGA-II (pymoo), multi-objective only (--objectives)",
                    ("dsmnas.trainables.searchers.nsga2:NSGA2Settings",),
                    "dsmnas.trainables.searchers.nsga2:check_nsga2", workers=True,
                    objectives=True),
    "random-update": Method("dsmnas.trainables.searchers.subspace_random:run_random_update", "random search with subspace update (Fig. 7): DSMNAS-v0, random actions",
                            ("dsmnas.trainables.searchers.subspace_random:RandomUpdateSettings",)),
    "random-mined": Method("dsmnas.trainables.searchers.subspace_random:run_random_mined", "random search in DSM-NAS's final mined subspaces (Fig. 7)",
                           ("dsmnas.trainables.searchers.subspace_random:RandomMinedSettings", _LEARNER),
                           "dsmnas.trainables.searchers.subspace_random:check_random_mined"),
    "ppo": Method("dsmnas.trainables.agents:run_ppo", "PPO (gamma 0) with the DSM-NAS GNN+LSTM controller",
                  ("dsmnas.trainables.agents:PPOSettings",), "dsmnas.trainables.workers:check_vector_search", workers=True),
    "appo": Method("dsmnas.trainables.agents:run_appo", "APPO (gamma 0) with the DSM-NAS GNN+LSTM controller",
                   ("dsmnas.trainables.agents:APPOSettings",), "dsmnas.trainables.workers:check_vector_search", workers=True),
    "ppo-flat": Method("dsmnas.trainables.agents:run_ppo_flat", "PPO, RLlib's default MLP on the flattened obs (no graph)",
                       ("dsmnas.trainables.agents:FlatPPOSettings",), "dsmnas.trainables.workers:check_vector_search", workers=True,
                       objectives=True),
    "dsm-plus": Method("dsmnas.trainables.variants:run_dsm_plus", "DSM-NAS+: start from a cifar10 search's final centers",
                       (_LEARNER,), "dsmnas.trainables.variants:check_dsm_plus"),
    "dsm-oneway": Method("dsmnas.trainables.variants:run_dsm_oneway", "dsm, but the GNN passes messages only weaker -> better (this project's first dsm)",
                         (_LEARNER,), "dsmnas.trainables.variants:check_dsm_oneway_settings",
                         **_variant_population("dsm_oneway")),
    "dsm-nonoop": Method("dsmnas.trainables.variants:run_dsm_nonoop", "dsm, but no edit may set a position to the op the center already has (no no-op edits)",
                         (_LEARNER,), "dsmnas.trainables.variants:check_dsm_nonoop_settings",
                         **_variant_population("dsm_nonoop")),
    "dsm-macs": Method("dsmnas.trainables.variants:run_dsm_macs", "dsm, but proposals over a limit (mobilenet: MACs) cost no query and are penalised by their overshoot",
                       (_LEARNER,), "dsmnas.trainables.variants:check_dsm_macs",
                       **_variant_population("dsm_macs")),
    "ofa-evolution": Method("dsmnas.trainables.searchers.ofa_evolution:run_ofa_evolution", "Once-for-All's EvolutionFinder (mobilenet space), each prediction a charged query",
                            ("dsmnas.trainables.searchers.ofa_evolution:OFAEvolutionSettings",),
                            "dsmnas.trainables.searchers.ofa_evolution:check_ofa_evolution"),
    "dsm-tuned": Method("dsmnas.trainables.variants:run_dsm_tuned", "dsm with the space's K, M, entropy and lr chosen by a validation-only sweep (SpaceSpec.tuned)",
                        (_LEARNER,), "dsmnas.trainables.variants:check_dsm_tuned",
                        **_variant_population("dsm_tuned")),
    "dsm-sync": Method("dsmnas.trainables.workers:run_dsm_sync", "DSM-NAS over N workers (--workers N), synchronous: N proposals per step from one graph, one update on the N",
                       (_LEARNER,), "dsmnas.trainables.workers:check_dsm_sync", workers=True,
                       objectives=True),
    "dsm-async": Method("dsmnas.trainables.workers:run_dsm_async", "DSM-NAS over N workers (--workers N), asynchronous: a proposal whenever a worker frees, each reward trains its own action once it is known",
                        (_LEARNER,), "dsmnas.trainables.workers:check_dsm_async", workers=True,
                        objectives=True),
    "dsm-hv": Method("dsmnas.trainables.variants:run_dsm_hv", "dsm with --objectives, rewarded by the hypervolume a proposal adds to the known front (mo_form=hypervolume)",
                     (_LEARNER,), "dsmnas.trainables.variants:check_dsm_hv", objectives=True,
                     **_variant_population("dsm_hv")),
    "dsm-cache": Method("dsmnas.trainables.variants:run_dsm_cache", "dsm with repeats free (cache_queries): not the paper's budget rule, more queries per budget",
                        (_LEARNER,), **_variant_population("dsm_cache")),
}


def method_names() -> list[str]:
    return list(METHODS)


def describe_methods() -> str:
    return "\n".join(f"  {name:14s} {m.description}" for name, m in METHODS.items())


def _import(target: str):
    module, attr = target.split(":")
    return getattr(importlib.import_module(module), attr)


def _method(method: str) -> Method:
    try:
        return METHODS[method]
    except KeyError:
        raise ConfigError(
            f"unknown method {method!r}; allowed: {', '.join(METHODS)}"
        ) from None


def resolve(method: str) -> Callable[..., SearchResult]:
    """The function that runs `method`; ConfigError listing the known names."""
    return _import(_method(method).run)


def check_method(method: str, env_config: EnvConfig, settings: dict[str, Any] | None = None,
                 label: str | None = None) -> None:
    """Refuse, with one ConfigError, what `method` cannot run: unknown or mistyped settings,
    a space or budget it does not support. Cheap: called before Ray starts."""
    m = _method(method)
    classes = [_import(c) for c in m.settings]
    parse_settings(label or method, dict(settings or {}), *classes)
    if env_config.workers > 1 and not m.workers:
        able = ", ".join(name for name, other in METHODS.items() if other.workers)
        raise ConfigError(f"{label or method} does not run over parallel workers (workers = "
                          f"{env_config.workers}); methods that do: {able}")
    if env_config.objectives is not None and not m.objectives:
        able = ", ".join(name for name, other in METHODS.items() if other.objectives)
        raise ConfigError(f"{label or method} has no multi-objective form (--objectives); "
                          f"methods that have one so far: {able}")
    if m.check is not None:
        try:
            _import(m.check)(env_config, dict(settings or {}))
        except ConfigError as e:
            name = label or method
            if str(e).startswith(name):
                raise
            raise ConfigError(f"{name}: {e}") from None


def population_refusal(method: str, env_config: EnvConfig,
                       settings: dict[str, Any] | None = None) -> str | None:
    """Why `method` with these settings cannot run in population mode (None: it can)."""
    m = _method(method)
    if m.population is None:
        return f"{method} has no population mode"
    if m.population_check is None:
        return None
    return _import(m.population_check)(env_config, dict(settings or {}))


def run_method_population(
    method: str,
    env_config: EnvConfig,
    settings: dict[str, Any] | None,
    seeds: list[int],
    progress: Callable[[str], None] | None = None,
) -> list[SearchResult]:
    """The searches of `seeds` with `method` as one population (after `population_refusal`
    said None); one `SearchResult` per seed, in order."""
    check_method(method, env_config, settings)
    reason = population_refusal(method, env_config, settings)
    if reason:
        raise ConfigError(reason)
    results = _import(_method(method).population)(env_config, dict(settings or {}),
                                                  list(seeds), progress)
    for result in results:
        result.config.setdefault("method", method)
    return results


def run_method(
    method: str,
    env_config: EnvConfig,
    settings: dict[str, Any] | None = None,
    progress: Callable[[str], None] | None = None,
) -> SearchResult:
    """Run one search with `method` on the benchmark that `env_config` describes (after
    `check_method`)."""
    check_method(method, env_config, settings)
    result = resolve(method)(env_config, dict(settings or {}), progress)
    result.config.setdefault("method", method)
    return result
