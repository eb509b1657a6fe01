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
