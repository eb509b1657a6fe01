"""Shared fixtures: the shared NAS-Bench-201 table is read from ../shared, never copied.

`DSMNAS_SHARED` overrides the shared folder: `DSMNAS_SHARED=/nonexistent python -m pytest`
runs the suite as a fresh clone without ../shared would.

Two fixtures give NAS-Bench-201 data: `nb201_table` is the shared table itself (a test that
takes it checks that table's own numbers, and skips without it); `nb201_data` is that table
when present, else the embedded data, for tests of behaviour that holds on any data.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

SHARED = Path(os.environ.get("DSMNAS_SHARED") or Path(__file__).resolve().parents[2] / "shared")
NB201_TABLE = SHARED / "data" / "nb201" / "nb201.csv.gz"
OFA_DIR = SHARED / "models" / "ofa"


@pytest.fixture(scope="session")
def nb201_table() -> str:
    if not NB201_TABLE.exists():
        pytest.skip(f"shared NAS-Bench-201 table not found at {NB201_TABLE}")
    return str(NB201_TABLE)


# Mean cost of one query, embedded (200-epoch training time, 1,828 s on cifar10) over table
# (the 12-epoch protocol's simulated cost, 112.8 s): the same on all three datasets to 3 %.
EMBEDDED_COST_RATIO = 16.0


@dataclass(frozen=True)
class NB201Data:
    """The NAS-Bench-201 data a test searches, with what the test may expect of it."""

    table: str | None
    """The shared table's path, or None for the embedded data (`EnvConfig(table=None)`)."""

    @property
    def args(self) -> list[str]:
        """The CLI options that select this data."""
        return ["--table", self.table] if self.table else []

    def budget_s(self, table_s: float) -> float:
        """A budget that buys about as many queries on this data as `table_s` on the table
        (`table_s` itself there, so that tests with the table run as they always did)."""
        return float(table_s) if self.table else float(table_s) * EMBEDDED_COST_RATIO

    @property
    def val_metric(self) -> str:
        return "val_acc_12ep" if self.table else "val_acc_200ep"

    @property
    def test_datasets(self) -> tuple[str, ...]:
        """The datasets with test accuracy: all three in the table, none embedded."""
        return ("cifar10", "cifar100", "ImageNet16-120") if self.table else ()

    def assert_test_acc(self, test_acc: dict | None) -> None:
        """A result's `test_acc`: one entry per dataset of the table; None (result.json: no
        key) where the data has no test accuracy."""
        if self.test_datasets:
            assert test_acc is not None and set(test_acc) == set(self.test_datasets), test_acc
        else:
            assert test_acc is None, test_acc

    @property
    def test_columns(self) -> list[str]:
        """The `test_acc_<dataset>` columns of runs.csv and sweep.csv on this data."""
        return [f"test_acc_{d}" for d in self.test_datasets]


@pytest.fixture(scope="session")
def nb201_data() -> NB201Data:
    """The shared table when present, else the embedded data."""
    return NB201Data(str(NB201_TABLE) if NB201_TABLE.exists() else None)


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

    from dsmnas.trainables.ray_utils import ensure_ray

    ensure_ray(num_cpus=2)
    yield
    ray.shutdown()
