"""Improved DSM-NAS variants, each behind its own method name so that `dsm` stays the paper's.

Each variant is `run_search` with one documented change, and takes the same settings as `dsm`
(`LearnerSettings`); the methods registry lists them:

- `dsm-nonoop`: the decoder never picks, for an edit, the op the chosen center already has at
  the edited position (`LearnerSettings.mask_noop_edits`, the module's `mask_noop_edits`).
  About 3% of the paper's queries are the center itself, wasted: reward 0, charged in full.
- `dsm-cache`: repeated queries are free (`EnvConfig.cache_queries`). About 10% of the
  paper's queries repeat an architecture already queried; with the cache they cost nothing,
  so the search makes more queries than `dsm` on the same budget. That is a different budget
  rule from the paper's (every query charged), so compare it with baselines that also cache.
- `dsm-macs` (any space with a limit; the paper's MobileNet-like MACs): a proposal over a limit is not queried (MACs are
  counted, not measured, so it costs no budget) and is rewarded -100 * (MACs / limit - 1),
  minus its overshoot in percent (`EnvConfig.over_limit="penalty"`). In the paper's rule such
  a proposal is queried, rewarded by its accuracy gain, and can never become a center: after
  1,000 queries 40-47 % of a 10,000-query search's queries were such proposals (seed 5).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from envs import EnvConfig
from trainables.search import LearnerSettings, SearchResult, learner_for_space, run_search
from envs.settings import parse_settings
from envs.errors import ConfigError


def check_dsm_nonoop_settings(env_config: EnvConfig, settings: dict[str, Any]) -> None:
    if settings.get("mask_noop_edits", True) is not True:
        raise ConfigError(
            "dsm-nonoop is dsm with mask_noop_edits=true; for mask_noop_edits=false use dsm"
        )


def check_dsm_macs(env_config: EnvConfig, settings: dict[str, Any] | None = None) -> None:
    """dsm-macs penalises proposals over a limit: it needs one."""
    if not env_config.limits:
        raise ConfigError(
            f"dsm-macs needs a limit (the mobilenet space's MACs, or --limit METRIC=VALUE); "
            f"the {env_config.spec.name} space has none set"
        )


def run_dsm_nonoop(
    env_config: EnvConfig, settings: dict[str, Any], progress=None
) -> SearchResult:
    """DSM-NAS whose edits never set a position to the op the chosen center has there."""
    check_dsm_nonoop_settings(env_config, settings)
    (learner,) = parse_settings("dsm-nonoop", settings, LearnerSettings)
    learner = learner_for_space(env_config.space, learner, settings)
    learner = dataclasses.replace(learner, mask_noop_edits=True)
    return run_search(env_config, learner, progress=progress)


def run_dsm_cache(
    env_config: EnvConfig, settings: dict[str, Any], progress=None
) -> SearchResult:
    """DSM-NAS with repeated queries free (`cache_queries=True`; result.config records it)."""
    (learner,) = parse_settings("dsm-cache", settings, LearnerSettings)
    learner = learner_for_space(env_config.space, learner, settings)
    return run_search(
        dataclasses.replace(env_config, cache_queries=True), learner, progress=progress
    )


def run_dsm_macs(
    env_config: EnvConfig, settings: dict[str, Any], progress=None
) -> SearchResult:
    """DSM-NAS whose proposals over the MACs limit cost no query and are penalised."""
    check_dsm_macs(env_config)
    (learner,) = parse_settings("dsm-macs", settings, LearnerSettings)
    learner = learner_for_space(env_config.space, learner, settings)
    return run_search(
        dataclasses.replace(env_config, over_limit="penalty"), learner, progress=progress
    )
