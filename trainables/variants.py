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
"""

from __future__ import annotations

import dataclasses
from typing import Any

from envs import EnvConfig
from trainables.search import LearnerSettings, SearchResult, run_search
from trainables.settings import parse_settings


def run_dsm_nonoop(
    env_config: EnvConfig, settings: dict[str, Any], progress=None
) -> SearchResult:
    """DSM-NAS whose edits never set a position to the op the chosen center has there."""
    if settings.get("mask_noop_edits", True) is not True:
        raise ValueError(
            "dsm-nonoop is dsm with mask_noop_edits=true; for mask_noop_edits=false use dsm"
        )
    (learner,) = parse_settings("dsm-nonoop", settings, LearnerSettings)
    learner = dataclasses.replace(learner, mask_noop_edits=True)
    return run_search(env_config, learner, progress=progress)


def run_dsm_cache(
    env_config: EnvConfig, settings: dict[str, Any], progress=None
) -> SearchResult:
    """DSM-NAS with repeated queries free (`cache_queries=True`; result.config records it)."""
    (learner,) = parse_settings("dsm-cache", settings, LearnerSettings)
    return run_search(
        dataclasses.replace(env_config, cache_queries=True), learner, progress=progress
    )
