"""Official NAS-Bench-201 / NATS-Bench (tss) files -> our per-architecture table.

This module owns one conversion: it opens an official benchmark file with the official API
package and turns it into a DataFrame with exactly the columns of the shared reference table
(shared/data/nb201/nb201.csv.gz, defined in its README), one row per (architecture, dataset)
for cifar10, cifar100 and ImageNet16-120, ordered by dataset then `arch_index`. It does not
download, cache or interpret the numbers; `envs.benchmarks.nb201` does that with the table.

Inputs (the kind is detected from the path, not trusted from its name):
- NAS-Bench-201 `.pth` (`NAS-Bench-201-v1_0-e61699.pth`, `NAS-Bench-201-v1_1-096897.pth`):
  `nas_201_api.NASBench201API(path, verbose=False)`. The file's 'less' results are hp='12',
  'full' are hp='200'.
- NATS-Bench topology: the single file `NATS-tss-v1_0-3ffb9.pickle.pbz2` or the directory
  `NATS-tss-v1_0-3ffb9-simple` (fast mode):
  `nats_bench.create(path, 'tss', fast_mode=<path is a directory>, verbose=False)`.

Where each column comes from. `api.get_more_info(i, ds, iepoch=None, hp=hp, is_random=False)`
averages the final epoch over the seeds; V = 'cifar10-valid' for cifar10 (trained on 25k
images) and the dataset itself otherwise; T = 'cifar10' (trained on train+valid) for cifar10
and the dataset itself otherwise. get_more_info picks the split: V -> 'x-valid'; T -> 'ori-test'
for cifar10, 'x-test' for the others.
- arch_index, arch_str: the position in the file and `api[i]` (the official meta_archs order,
  identical in all official files).
- val_acc_12ep / test_acc_12ep: get_more_info(V / T, hp='12') 'valid-accuracy' / 'test-accuracy'.
- val_acc_200ep / test_acc_200ep: the same with hp='200'.
- val_acc_200ep_std, n_seeds_200ep: the seeds of the hp='200' ArchResults of V
  (`get_dataset_seeds`) and the population std (ddof=0, as in the reference table) of
  `get_metrics(V, 'x-valid', is_random=seed)['accuracy']` over them. n_seeds_200ep is 0 when
  the file has no hp='200' run.
- train_time_200ep_s / train_time_per_epoch_s: get_more_info(V, hp='200') 'train-all-time' /
  'train-per-time' (the total over 200 epochs, divided by 200).
- train_time_12ep_s: get_more_info(V, hp='12') 'train-all-time'.
- valid_time_per_epoch_s: get_more_info(V, hp='12') 'valid-per-time' (the 'x-valid' pass).
- sim_cost_12ep_s: train_time_12ep_s + valid_time_per_epoch_s, i.e. the time_cost of
  `simulate_train_eval(arch, ds, hp='12')` (averaged over seeds instead of sampling one).
- params_mb, flops_m, latency_s: `get_compute_costs(V)` of the hp='200' ArchResults, which is
  exactly what `api.get_cost_info(i, V, hp='200')` returns (hp='12' when there is no
  hp='200' run). nas_201_api averages params/flops over the seeds; nats_bench (>=1.6) takes
  seed 888's value when the seeds disagree, so the two readers can differ there.

NaN means the file holds no such number: the dataset or hp is absent for that architecture,
the architecture has no results at all (then every metric is NaN and n_seeds_200ep is 0), or
the run recorded no times/latency. Two time columns fall back instead of going NaN, because
the official files write the same pseudo per-epoch times into the hp='12' and hp='200' runs
(`correct_time_related_info` in the official collection scripts), so the fallback is exact:
train_time_12ep_s = 12 x train_time_per_epoch_s and valid_time_per_epoch_s = the hp='200'
'valid-per-time' when the file has no hp='12' run of V.

What each official file provides:
- NAS-Bench-201 v1_0 (e61699): hp='200' on all four datasets (1-3 seeds). Its hp='12' ('less')
  results cover only cifar10-valid, so test_acc_12ep is NaN everywhere and val_acc_12ep is NaN
  for cifar100 and ImageNet16-120 (their 12-epoch costs come from the fallback above).
- NAS-Bench-201 v1_1 (096897) and NATS-tss v1_0 (3ffb9, file or -simple directory): hp='12'
  (one seed, two on cifar10-valid) and hp='200' (1-3 seeds) on all four datasets: every column.

Reading cost: about 7 ms per architecture (some 2 minutes for 15,625) on top of the official
load. We read each ArchResults in place instead of through get_cost_info /
query_meta_info_by_index, which deep-copy it on every call (15 ms each, several times per
architecture); the methods called and so the numbers are the same. In fast mode each
architecture is dropped from the API after its rows are built, so memory stays flat.

torch >= 2.6 loads `.pth` files with weights_only=True and refuses some pickled objects (numpy
scalars, for one). Then the file is loaded again with weights_only=False and handed to the
API as a dict (which it deep-copies, so expect twice the memory): only read files you trust,
as with any pickle, which is also how nats_bench reads its own files.
"""

from __future__ import annotations

import math
import os
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from dsmnas.envs.errors import ConfigError, MissingFileError

COLUMNS = (
    "arch_index", "arch_str", "dataset", "val_acc_12ep", "test_acc_12ep", "val_acc_200ep",
    "val_acc_200ep_std", "n_seeds_200ep", "test_acc_200ep", "train_time_per_epoch_s",
    "train_time_12ep_s", "train_time_200ep_s", "valid_time_per_epoch_s", "sim_cost_12ep_s",
    "params_mb", "flops_m", "latency_s",
)
DATASETS = ("cifar10", "cifar100", "ImageNet16-120")
SUPPORTED_FORMATS = (
    "a NAS-Bench-201 .pth file (NAS-Bench-201-v1_0-e61699.pth, NAS-Bench-201-v1_1-096897.pth)",
    "a NATS-Bench topology file (NATS-tss-v1_0-3ffb9.pickle.pbz2)",
    "a NATS-Bench topology directory (NATS-tss-v1_0-3ffb9-simple)",
)
PROGRESS_EVERY_ARCHS = 500
SHORT_HP, FULL_HP = "12", "200"
SHORT_EPOCHS = 12

_VALID_SOURCE = {"cifar10": "cifar10-valid", "cifar100": "cifar100", "ImageNet16-120": "ImageNet16-120"}
_TEST_SOURCE = {"cifar10": "cifar10", "cifar100": "cifar100", "ImageNet16-120": "ImageNet16-120"}
_BZ2_MAGIC = b"BZh"
_NB201, _NATS_FILE, _NATS_DIR = "NAS-Bench-201 .pth", "NATS-Bench tss file", "NATS-Bench tss directory"
# What unpickling a wrong or damaged file raises, in torch.load, bz2 + pickle and the official
# constructors (which assert on the dict layout).
_LOAD_ERRORS = (
    AssertionError, AttributeError, EOFError, KeyError, IndexError, OSError, RuntimeError,
    TypeError, ValueError, pickle.UnpicklingError,
)
# What the official query methods raise when a file lacks a dataset, an hp or an architecture.
_ABSENT = (KeyError, ValueError)

Progress = Callable[[int, int], Any]


def read_official(path: str | os.PathLike, *, progress: Progress | None = None) -> pd.DataFrame:
    """The table of an official NAS-Bench-201 / NATS-Bench tss file or directory.

    FileNotFoundError when `path` does not exist; ValueError naming the path and the supported
    formats when it is not one of them. `progress(done, total)` is called every
    PROGRESS_EVERY_ARCHS architectures and at the end, because a full file takes minutes.
    """
    path = _existing_path(path)
    _check_progress(progress)
    api = _open_api(path)
    return _table(api, progress)


def export_table(
    src: str | os.PathLike, dst: str | os.PathLike, *, progress: Progress | None = None
) -> pd.DataFrame:
    """Write the table of `src` to `dst` as CSV (gzip when `dst` ends with .gz) and return it.

    `dst`'s folder is checked before the read, so a typo does not cost a full conversion.
    """
    dst = Path(os.fspath(dst)).expanduser()
    if not dst.parent.is_dir():
        raise MissingFileError(f"folder for the exported table does not exist: {str(dst.parent)!r}")
    table = read_official(src, progress=progress)
    table.to_csv(dst, index=False, compression="gzip" if dst.name.endswith(".gz") else None)
    return table


def _existing_path(path: str | os.PathLike) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise ConfigError(f"path must be a str or os.PathLike, got {path!r}; supported: {_formats()}")
    resolved = Path(os.fspath(path)).expanduser()
    if not resolved.exists():
        raise MissingFileError(f"official benchmark file or directory does not exist: {str(path)!r}")
    return resolved


def _check_progress(progress: Progress | None) -> None:
    if progress is not None and not callable(progress):
        raise ConfigError(f"progress must be None or a callable(done, total), got {progress!r}")


def _formats() -> str:
    return "; ".join(SUPPORTED_FORMATS)


# ---------------------------------------------------------------- opening
def _detect_kind(path: Path) -> str:
    """By content, not name: renamed or md5-suffixed copies of the files are common."""
    if path.is_dir():
        return _NATS_DIR
    with path.open("rb") as f:
        head = f.read(len(_BZ2_MAGIC))
    return _NATS_FILE if head == _BZ2_MAGIC else _NB201


def _open_api(path: Path):
    kind = _detect_kind(path)
    try:
        api = _open_nb201(path) if kind == _NB201 else _open_nats(path, kind == _NATS_DIR)
    except _LOAD_ERRORS as exc:
        raise ConfigError(
            f"cannot read {str(path)!r} as a {kind} ({type(exc).__name__}: {_short(exc)}); "
            f"supported: {_formats()}"
        ) from exc
    _check_topology(api, path, kind)
    return api


def _open_nb201(path: Path):
    from nas_201_api import NASBench201API

    try:
        return NASBench201API(str(path), verbose=False)
    except pickle.UnpicklingError:
        # torch>=2.6 weights_only refusal (or garbage, which fails again below).
        import torch

        data = torch.load(str(path), map_location="cpu", weights_only=False)
        return NASBench201API(data, verbose=False)


def _open_nats(path: Path, fast_mode: bool):
    import nats_bench

    return nats_bench.create(str(path), "tss", fast_mode=fast_mode, verbose=False)


def _check_topology(api, path: Path, kind: str) -> None:
    """An NATS size-space (sss) file loads through the same code but holds no cells."""
    if len(api) == 0:
        raise ConfigError(f"{kind} {str(path)!r} lists no architectures; supported: {_formats()}")
    first = api[0]
    if not (isinstance(first, str) and first.count("+") == 2 and first.count("~") == 6):
        raise ConfigError(
            f"{kind} {str(path)!r} is not a topology (NAS-Bench-201 cell) benchmark: its first "
            f"architecture is {first!r}; supported: {_formats()}"
        )
    hps = set(map(str, api.avaliable_hps))  # sic: the official spelling
    if hps and not hps & {SHORT_HP, FULL_HP}:
        raise ConfigError(
            f"{kind} {str(path)!r} has results for hp {sorted(hps)}, none of "
            f"{[SHORT_HP, FULL_HP]}; supported: {_formats()}"
        )


def _short(exc: BaseException, limit: int = 200) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return text[:limit]


# ---------------------------------------------------------------- converting
def _table(api, progress: Progress | None) -> pd.DataFrame:
    total = len(api)
    rows: dict[str, list[dict]] = {ds: [] for ds in DATASETS}
    for index in range(total):
        for dataset, row in _arch_rows(api, index).items():
            rows[dataset].append(row)
        done = index + 1
        if progress is not None and (done % PROGRESS_EVERY_ARCHS == 0 or done == total):
            progress(done, total)
    frame = pd.DataFrame([r for ds in DATASETS for r in rows[ds]], columns=list(COLUMNS))
    return frame.astype({"arch_index": "int64", "n_seeds_200ep": "int64"})


def _arch_rows(api, index: int) -> dict[str, dict]:
    arch_str = api[index]
    results = _arch_results(api, index)
    rows = {ds: _row(api, index, arch_str, ds, results) for ds in DATASETS}
    _release(api, index)
    return rows


def _arch_results(api, index: int) -> dict:
    """{hp: ArchResults} of one architecture, read in place (no deep copy).

    In fast mode the per-architecture file is loaded through the official `reload`; a missing
    file means the architecture was not evaluated, so it gets NaN rows.
    """
    if getattr(api, "fast_mode", False) and index not in api.arch2infos_dict:
        try:
            api.reload(api.archive_dir, index)
        except AssertionError:  # official: assert the per-architecture file exists
            return {}
        except _LOAD_ERRORS as exc:
            raise ConfigError(
                f"cannot read architecture {index} of NATS-Bench tss directory "
                f"{api.archive_dir!r} ({type(exc).__name__}: {_short(exc)})"
            ) from exc
    return dict(api.arch2infos_dict.get(index, {}))


def _release(api, index: int) -> None:
    """Fast mode would otherwise keep every architecture loaded, which it exists to avoid."""
    if getattr(api, "fast_mode", False):
        api.arch2infos_dict.pop(index, None)
        api.evaluated_indexes.discard(index)


def _row(api, index: int, arch_str: str, dataset: str, results: dict) -> dict:
    valid_ds, test_ds = _VALID_SOURCE[dataset], _TEST_SOURCE[dataset]
    short_valid = _more_info(api, index, valid_ds, SHORT_HP, results)
    short_test = _more_info(api, index, test_ds, SHORT_HP, results) if test_ds != valid_ds else short_valid
    full_valid = _more_info(api, index, valid_ds, FULL_HP, results)
    full_test = _more_info(api, index, test_ds, FULL_HP, results) if test_ds != valid_ds else full_valid
    std, n_seeds = _seed_spread(results.get(FULL_HP), valid_ds)
    params_mb, flops_m, latency_s = _costs(results, valid_ds)

    train_per_epoch_s = _num(full_valid.get("train-per-time"))
    train_12ep_s = _num(short_valid.get("train-all-time"))
    if math.isnan(train_12ep_s):
        train_12ep_s = SHORT_EPOCHS * train_per_epoch_s
    valid_per_epoch_s = _num(short_valid.get("valid-per-time"))
    if math.isnan(valid_per_epoch_s):
        valid_per_epoch_s = _num(full_valid.get("valid-per-time"))
    return {
        "arch_index": index,
        "arch_str": arch_str,
        "dataset": dataset,
        "val_acc_12ep": _num(short_valid.get("valid-accuracy")),
        "test_acc_12ep": _num(short_test.get("test-accuracy")),
        "val_acc_200ep": _num(full_valid.get("valid-accuracy")),
        "val_acc_200ep_std": std,
        "n_seeds_200ep": n_seeds,
        "test_acc_200ep": _num(full_test.get("test-accuracy")),
        "train_time_per_epoch_s": train_per_epoch_s,
        "train_time_12ep_s": train_12ep_s,
        "train_time_200ep_s": _num(full_valid.get("train-all-time")),
        "valid_time_per_epoch_s": valid_per_epoch_s,
        "sim_cost_12ep_s": train_12ep_s + valid_per_epoch_s,
        "params_mb": params_mb,
        "flops_m": flops_m,
        "latency_s": latency_s,
    }


def _more_info(api, index: int, dataset: str, hp: str, results: dict) -> dict:
    """get_more_info averaged over seeds; {} when the file lacks this dataset/hp."""
    if results.get(hp) is None:
        return {}
    try:
        return api.get_more_info(index, dataset, iepoch=None, hp=hp, is_random=False)
    except _ABSENT:
        return {}


def _seed_spread(arch_results, dataset: str) -> tuple[float, int]:
    """(population std of the final x-valid accuracy over seeds, number of seeds)."""
    if arch_results is None or dataset not in arch_results.get_dataset_names():
        return math.nan, 0
    seeds = arch_results.get_dataset_seeds(dataset)
    try:
        accs = [arch_results.get_metrics(dataset, "x-valid", is_random=s)["accuracy"] for s in seeds]
    except _ABSENT:
        return math.nan, len(seeds)
    return float(np.std(np.asarray(accs, dtype=float))), len(seeds)


def _costs(results: dict, dataset: str) -> tuple[float, float, float]:
    """(params_mb, flops_m, latency_s) as get_cost_info reports them, hp='200' first."""
    for hp in (FULL_HP, SHORT_HP):
        arch_results = results.get(hp)
        if arch_results is None:
            continue
        try:
            info = arch_results.get_compute_costs(dataset)
        except _ABSENT:
            continue
        return _num(info.get("params")), _num(info.get("flops")), _num(info.get("latency"))
    return math.nan, math.nan, math.nan


def _num(value) -> float:
    return math.nan if value is None else float(value)


__all__ = ["COLUMNS", "DATASETS", "SUPPORTED_FORMATS", "export_table", "read_official"]
