"""Shared fixtures: the shared NAS-Bench-201 table is read from ../shared, never copied."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared"
NB201_TABLE = SHARED / "data" / "nb201" / "nb201.csv.gz"
OFA_DIR = SHARED / "models" / "ofa"


@pytest.fixture(scope="session")
def nb201_table() -> str:
    if not NB201_TABLE.exists():
        pytest.skip(f"shared NAS-Bench-201 table not found at {NB201_TABLE}")
    return str(NB201_TABLE)


@pytest.fixture(scope="session")
def ofa_predictor() -> str:
    """OFA's pretrained ImageNet accuracy predictor (acc_predictor.pth) in ../shared."""
    path = OFA_DIR / "acc_predictor.pth"
    if not path.exists():
        pytest.skip(f"shared OFA predictor not found at {path}")
    return str(path)


@pytest.fixture(scope="session")
def ofa_specialized() -> Path:
    """OFA's published networks' net.config folders in ../shared."""
    path = OFA_DIR / "specialized"
    if not path.exists():
        pytest.skip(f"shared OFA networks not found at {path}")
    return path


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray instance for the whole test session (start-up costs ~4 s)."""
    import ray

    from trainables.ray_utils import ensure_ray

    ensure_ray(num_cpus=2)
    yield
    ray.shutdown()
