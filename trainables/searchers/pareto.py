"""What the baselines' multi-objective forms share: Pareto dominance and NSGA-II's rank and
crowding distance, on the normalised objectives (`QueryLog.objective_point`: every objective
minimised, 0 best and 1 worst).

Non-dominated sorting is moocore's (`pareto_rank`) and the crowding distance pymoo's (the one
its NSGA-II survival uses, `get_crowding_function("cd")`); both are imported only here and
only with `--objectives`, so a search without them imports neither.
"""

from __future__ import annotations

import numpy as np


def dominates(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether minimised point `a` dominates `b`: no worse in every objective, better in one."""
    return bool(np.all(a <= b) and np.any(a < b))


def covers(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether `a` weakly dominates `b`: no worse in every objective (equal points cover each
    other)."""
    return bool(np.all(a <= b))


def rank_and_crowding(points: np.ndarray, feasible: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """NSGA-II's (rank, crowding distance) of each of `points` ((n, objectives), minimised).

    The feasible points are ranked by non-dominated sorting (0: dominated by no other
    feasible point; equal points share a rank); each infeasible point ranks after the last
    feasible rank. The crowding distance is taken within each rank: infinite at a rank's
    extremes and for a rank of at most 2 points; 0 for the infeasible ones. Lower rank, then
    larger crowding, is better."""
    import moocore
    from pymoo.operators.survival.rank_and_crowding.metrics import get_crowding_function

    points = np.asarray(points, dtype=float)
    feasible = np.asarray(feasible, dtype=bool)
    rank = np.zeros(len(points), dtype=int)
    crowding = np.zeros(len(points))
    ok = np.flatnonzero(feasible)
    if len(ok):
        rank[ok] = moocore.pareto_rank(points[ok])
        crowd = get_crowding_function("cd")
        for r in np.unique(rank[ok]):
            members = ok[rank[ok] == r]
            crowding[members] = crowd.do(points[members])
    rank[~feasible] = rank[ok].max() + 1 if len(ok) else 0
    return rank, crowding
