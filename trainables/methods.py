"""Every search method by its command-line name, behind one call: `run_method`.

A method spends the budget of the same `DSMNAS-v0` benchmark and clock (env settings from
`EnvConfig`) and returns a `SearchResult` (answer, queries, simulated and wall time, one history
row per query). Registry entries are "module:function" strings, imported only when used, so
adding a method is adding one file and one line here. Each function has the signature
`fn(env_config: EnvConfig, settings: dict, progress) -> SearchResult`; unknown settings raise.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable

from envs import EnvConfig
from trainables.search import SearchResult

METHODS: dict[str, tuple[str, str]] = {
    # name: ("module:function", one-line description for --help)
    "dsm": ("trainables.search:run_dsm", "DSM-NAS, the paper's method (REINFORCE, GNN+LSTM)"),
    "random": ("trainables.searchers.random_search:run_random", "random search over the whole space"),
    "reinforce": ("trainables.searchers.reinforce:run_reinforce", "REINFORCE, NAS-Bench-201's RL baseline (no RLlib)"),
    "evolution": ("trainables.searchers.evolution:run_evolution", "regularized evolution (Real et al. 2019), NAS-Bench-201's R-EA"),
    "local": ("trainables.searchers.local_search:run_local", "local search with restarts (White et al., UAI 2021)"),
    "random-update": ("trainables.searchers.subspace_random:run_random_update", "random search with subspace update (Fig. 7): DSMNAS-v0, random actions"),
    "random-mined": ("trainables.searchers.subspace_random:run_random_mined", "random search in DSM-NAS's final mined subspaces (Fig. 7)"),
    "ppo": ("trainables.agents:run_ppo", "PPO (gamma 0) with the DSM-NAS GNN+LSTM controller"),
    "appo": ("trainables.agents:run_appo", "APPO (gamma 0) with the DSM-NAS GNN+LSTM controller"),
    "ppo-flat": ("trainables.agents:run_ppo_flat", "PPO, RLlib's default MLP on the flattened obs (no graph)"),
    "dsm-plus": ("trainables.agents:run_dsm_plus", "DSM-NAS+: start from a cifar10 search's final centers"),
    "dsm-nonoop": ("trainables.variants:run_dsm_nonoop", "dsm, but no edit may set a position to the op the center already has (no no-op edits)"),
    "dsm-macs": ("trainables.variants:run_dsm_macs", "dsm, but proposals over the MACs limit cost no query and are penalised by their overshoot (mobilenet)"),
    "ofa-evolution": ("trainables.searchers.ofa_evolution:run_ofa_evolution", "Once-for-All's EvolutionFinder (mobilenet space), each prediction a charged query"),
    "dsm-cache": ("trainables.variants:run_dsm_cache", "dsm with repeats free (cache_queries): not the paper's budget rule, more queries per budget"),
}


def method_names() -> list[str]:
    return list(METHODS)


def describe_methods() -> str:
    return "\n".join(f"  {name:14s} {desc}" for name, (_, desc) in METHODS.items())


def resolve(method: str) -> Callable[..., SearchResult]:
    """The function that runs `method`; ValueError listing the known names."""
    try:
        target = METHODS[method][0]
    except KeyError:
        raise ValueError(
            f"unknown method {method!r}; allowed: {', '.join(METHODS)}"
        ) from None
    module, fn = target.split(":")
    return getattr(importlib.import_module(module), fn)


def run_method(
    method: str,
    env_config: EnvConfig,
    settings: dict[str, Any] | None = None,
    progress: Callable[[str], None] | None = None,
) -> SearchResult:
    """Run one search with `method` on the benchmark that `env_config` describes."""
    result = resolve(method)(env_config, dict(settings or {}), progress)
    result.config.setdefault("method", method)
    return result
