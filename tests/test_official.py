"""dsmnas.envs.benchmarks.official on tiny files in the real official layouts, with hand-made numbers.

The files are built the way the official collection scripts built the real ones: one
ResultsCount per (dataset, seed) with per-epoch train/eval records, gathered in an
ArchResults per hp, times and latency then overwritten by the official reset_latency /
reset_pseudo_*_times calls (as `correct_time_related_info` does), and the state dicts saved as
- NAS-Bench-201: torch.save({'meta_archs', 'total_archs', 'arch2infos': {i: {'full': hp200,
  'less': hp12}}, 'evaluated_indexes'}) in the legacy (pre-zip) format of the 2020 files;
- NATS-tss: nats_bench.pickle_save of {'meta_archs', 'total_archs', 'arch2infos':
  {i: {'12': ..., '200': ...}}, 'evaluated_indexes'} (one .pickle.pbz2), or the -simple
  directory (meta.pickle.pbz2 + 000000.pickle.pbz2 per architecture).
Architecture 2 is listed but never evaluated, so its rows must be NaN, not a crash.
"""

from __future__ import annotations

import bz2
import gzip
import math
import pickle
from collections import OrderedDict

import numpy as np
import pandas as pd
import pytest
import torch

import nas_201_api.api_utils as nb201_utils
import nats_bench
import nats_bench.api_utils as nats_utils
from dsmnas.envs.benchmarks import official
from dsmnas.envs.benchmarks.official import COLUMNS, export_table, read_official

ARCHS = [  # the first three official architectures
    "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|",
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|",
    "|avg_pool_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|avg_pool_3x3~0|avg_pool_3x3~1|avg_pool_3x3~2|",
]
EPOCHS = {"12": 12, "200": 200}
EVAL_SETS = {
    "cifar10-valid": ("x-valid", "ori-test"),
    "cifar10": ("ori-test",),
    "cifar100": ("x-valid", "x-test", "ori-test"),
    "ImageNet16-120": ("x-valid", "x-test", "ori-test"),
}
TRAIN_IMAGES = {"cifar10-valid": 25000, "cifar10": 50000, "cifar100": 50000, "ImageNet16-120": 151700}
EVAL_IMAGES = {
    ("cifar10-valid", "x-valid"): 25000, ("cifar10-valid", "ori-test"): 10000,
    ("cifar10", "ori-test"): 10000,
    ("cifar100", "x-valid"): 5000, ("cifar100", "x-test"): 5000, ("cifar100", "ori-test"): 10000,
    ("ImageNet16-120", "x-valid"): 3000, ("ImageNet16-120", "x-test"): 3000,
    ("ImageNet16-120", "ori-test"): 6000,
}
LATENCY_KEY = {"cifar10-valid": "cifar10", "cifar10": "cifar10", "cifar100": "cifar100",
               "ImageNet16-120": "ImageNet16-120"}  # official: cifar10 shares cifar10-valid's
CLASSES = {"cifar10-valid": 10, "cifar10": 10, "cifar100": 100, "ImageNet16-120": 120}
EARLY_ACC = 1.0  # every epoch but the last: reading any other epoch shows up as 1.0
DECOY_ACC = 3.0  # splits our columns must not use (cifar10-valid ori-test, x-100 ori-test)
MEASURED_S = 999.0  # raw times, replaced by the official pseudo-time calibration

# Final-epoch accuracies per hp, dataset and seed. cifar10-valid: x-valid; cifar10: ori-test;
# cifar100 / ImageNet16-120: (x-valid, x-test).
SPECS = {
    0: {
        "train_s_per_epoch": 10.0,  # on cifar10-valid (25k images); other sets scale by size
        "eval_s_per_image": 1e-4,
        "params_mb": 0.5, "flops_m": 60.0,
        "latency_s": {"cifar10": 0.01, "cifar100": 0.011, "ImageNet16-120": 0.012},
        "acc": {
            "200": {
                "cifar10-valid": {777: 80.0, 888: 82.0},
                "cifar10": {777: 85.0, 888: 86.0},
                "cifar100": {777: (60.0, 59.0), 888: (62.0, 61.0)},
                "ImageNet16-120": {777: (30.0, 29.0), 888: (33.0, 30.0)},
            },
            "12": {
                "cifar10-valid": {111: 70.0, 777: 72.0},
                "cifar10": {777: 75.0},
                "cifar100": {777: (40.0, 41.0)},
                "ImageNet16-120": {777: (20.0, 21.0)},
            },
        },
    },
    1: {
        "train_s_per_epoch": 5.0,
        "eval_s_per_image": 2e-4,
        "params_mb": 1.25, "flops_m": 150.0,
        "latency_s": {"cifar10": 0.02, "cifar100": 0.02, "ImageNet16-120": 0.02},
        "acc": {
            "200": {
                "cifar10-valid": {777: 90.0, 888: 91.0, 999: 92.0},
                "cifar10": {777: 93.0, 888: 94.0, 999: 95.0},
                "cifar100": {777: (70.0, 69.0), 888: (71.0, 70.0), 999: (72.0, 71.0)},
                "ImageNet16-120": {777: (40.0, 41.0), 888: (41.0, 42.0), 999: (42.0, 43.0)},
            },
            "12": {
                "cifar10-valid": {111: 85.0, 777: 86.0},
                "cifar10": {777: 88.0},
                "cifar100": {777: (55.0, 56.0)},
                "ImageNet16-120": {777: (25.0, 26.0)},
            },
        },
    },
}
STD3 = math.sqrt(2 / 3)  # population std of (x-1, x, x+1)
# Worked by hand from SPECS. Times: per-epoch train = rate x images/25000 (cifar100 2x,
# ImageNet16-120 6.068x); valid per epoch = eval_s_per_image x x-valid images;
# sim cost = 12 x per-epoch train + valid per epoch.
EXPECTED = {
    (0, "cifar10"): dict(
        val_acc_12ep=71.0, test_acc_12ep=75.0, val_acc_200ep=81.0, val_acc_200ep_std=1.0,
        n_seeds_200ep=2, test_acc_200ep=85.5, train_time_per_epoch_s=10.0,
        train_time_12ep_s=120.0, train_time_200ep_s=2000.0, valid_time_per_epoch_s=2.5,
        sim_cost_12ep_s=122.5, params_mb=0.5, flops_m=60.0, latency_s=0.01),
    (0, "cifar100"): dict(
        val_acc_12ep=40.0, test_acc_12ep=41.0, val_acc_200ep=61.0, val_acc_200ep_std=1.0,
        n_seeds_200ep=2, test_acc_200ep=60.0, train_time_per_epoch_s=20.0,
        train_time_12ep_s=240.0, train_time_200ep_s=4000.0, valid_time_per_epoch_s=0.5,
        sim_cost_12ep_s=240.5, params_mb=0.5, flops_m=60.0, latency_s=0.011),
    (0, "ImageNet16-120"): dict(
        val_acc_12ep=20.0, test_acc_12ep=21.0, val_acc_200ep=31.5, val_acc_200ep_std=1.5,
        n_seeds_200ep=2, test_acc_200ep=29.5, train_time_per_epoch_s=60.68,
        train_time_12ep_s=728.16, train_time_200ep_s=12136.0, valid_time_per_epoch_s=0.3,
        sim_cost_12ep_s=728.46, params_mb=0.5, flops_m=60.0, latency_s=0.012),
    (1, "cifar10"): dict(
        val_acc_12ep=85.5, test_acc_12ep=88.0, val_acc_200ep=91.0, val_acc_200ep_std=STD3,
        n_seeds_200ep=3, test_acc_200ep=94.0, train_time_per_epoch_s=5.0,
        train_time_12ep_s=60.0, train_time_200ep_s=1000.0, valid_time_per_epoch_s=5.0,
        sim_cost_12ep_s=65.0, params_mb=1.25, flops_m=150.0, latency_s=0.02),
    (1, "cifar100"): dict(
        val_acc_12ep=55.0, test_acc_12ep=56.0, val_acc_200ep=71.0, val_acc_200ep_std=STD3,
        n_seeds_200ep=3, test_acc_200ep=70.0, train_time_per_epoch_s=10.0,
        train_time_12ep_s=120.0, train_time_200ep_s=2000.0, valid_time_per_epoch_s=1.0,
        sim_cost_12ep_s=121.0, params_mb=1.25, flops_m=150.0, latency_s=0.02),
    (1, "ImageNet16-120"): dict(
        val_acc_12ep=25.0, test_acc_12ep=26.0, val_acc_200ep=41.0, val_acc_200ep_std=STD3,
        n_seeds_200ep=3, test_acc_200ep=42.0, train_time_per_epoch_s=30.34,
        train_time_12ep_s=364.08, train_time_200ep_s=6068.0, valid_time_per_epoch_s=0.6,
        sim_cost_12ep_s=364.68, params_mb=1.25, flops_m=150.0, latency_s=0.02),
}
METRICS = [c for c in COLUMNS if c not in ("arch_index", "arch_str", "dataset", "n_seeds_200ep")]
DATASETS = ("cifar10", "cifar100", "ImageNet16-120")


# ---------------------------------------------------------------- building official files
def _finals(dataset: str, acc) -> dict[str, float]:
    if dataset == "cifar10-valid":
        return {"x-valid": acc, "ori-test": DECOY_ACC}
    if dataset == "cifar10":
        return {"ori-test": acc}
    return {"x-valid": acc[0], "x-test": acc[1], "ori-test": DECOY_ACC}


def _trial(utils, dataset, seed, epochs, arch_str, spec, finals):
    def curve(last):
        return {e: (last if e == epochs - 1 else EARLY_ACC) for e in range(epochs)}

    config = {"channel": 16, "num_cells": 5, "arch_str": arch_str, "class_num": CLASSES[dataset]}
    run = utils.ResultsCount(dataset, None, curve(99.0), curve(0.1), spec["params_mb"],
                             spec["flops_m"], config, seed, epochs, None)
    run.update_train_info(curve(99.0), curve(99.9), curve(0.1), {e: MEASURED_S for e in range(epochs)})
    keys = [f"{name}@{e}" for name in EVAL_SETS[dataset] for e in range(epochs)]
    accs = {k: (finals[k.split("@")[0]] if k.endswith(f"@{epochs - 1}") else EARLY_ACC) for k in keys}
    run.update_eval(accs, {k: 0.5 for k in keys}, {k: MEASURED_S for k in keys})
    return run


def _arch_results(utils, index, hp, datasets, latency_type=float):
    """One ArchResults, calibrated like the official correct_time_related_info."""
    spec, arch_str = SPECS[index], ARCHS[index]
    results = utils.ArchResults(index, arch_str)
    for dataset in datasets:
        for seed, acc in spec["acc"][hp][dataset].items():
            results.update(dataset, seed, _trial(utils, dataset, seed, EPOCHS[hp], arch_str, spec,
                                                 _finals(dataset, acc)))
    for dataset in datasets:
        latency = spec["latency_s"][LATENCY_KEY[dataset]]
        results.reset_latency(dataset, None, latency_type(latency))
        per_epoch = spec["train_s_per_epoch"] / 25000 * TRAIN_IMAGES[dataset]
        results.reset_pseudo_train_times(dataset, None, per_epoch)
        for name in EVAL_SETS[dataset]:
            results.reset_pseudo_eval_times(
                dataset, None, name, spec["eval_s_per_image"] * EVAL_IMAGES[(dataset, name)])
    return results


def _hp_states(utils, index, short_datasets=tuple(EVAL_SETS), latency_type=float):
    return {
        "12": _arch_results(utils, index, "12", short_datasets, latency_type).state_dict(),
        "200": _arch_results(utils, index, "200", tuple(EVAL_SETS), latency_type).state_dict(),
    }


def write_nb201(path, short_datasets=tuple(EVAL_SETS), legacy=True, latency_type=float):
    """NAS-Bench-201 layout; v1_0 had 'less' (hp=12) results for cifar10-valid only."""
    infos = {}
    for i in SPECS:
        states = _hp_states(nb201_utils, i, short_datasets, latency_type)
        infos[i] = {"full": states["200"], "less": states["12"]}
    data = {"meta_archs": list(ARCHS), "total_archs": len(ARCHS), "arch2infos": infos,
            "evaluated_indexes": sorted(infos)}
    torch.save(data, path, _use_new_zipfile_serialization=not legacy)
    return path


def write_nats_file(folder):
    infos = {i: OrderedDict(_hp_states(nats_utils, i)) for i in SPECS}
    data = {"meta_archs": list(ARCHS), "total_archs": len(ARCHS), "arch2infos": infos,
            "evaluated_indexes": set(infos)}
    nats_bench.pickle_save(data, str(folder / "NATS-tss-v1_0-3ffb9.pickle"))
    return folder / "NATS-tss-v1_0-3ffb9.pickle.pbz2"


def write_nats_dir(folder):
    root = folder / "NATS-tss-v1_0-3ffb9-simple"
    root.mkdir()
    meta = {"meta_archs": list(ARCHS), "total_archs": len(ARCHS), "arch2infos": None,
            "evaluated_indexes": set()}
    nats_bench.pickle_save(meta, str(root / "meta.pickle"))
    for i in SPECS:
        nats_bench.pickle_save(OrderedDict(_hp_states(nats_utils, i)), str(root / f"{i:06d}.pickle"))
    return root


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("official")
    return {
        "nb201": write_nb201(root / "NAS-Bench-201-v1_1-096897.pth"),
        "nats_file": write_nats_file(root),
        "nats_dir": write_nats_dir(root),
    }


@pytest.fixture(scope="module")
def table201(files):
    return read_official(files["nb201"])


def _row(table, index, dataset):
    rows = table[(table.arch_index == index) & (table.dataset == dataset)]
    assert len(rows) == 1
    return rows.iloc[0]


def _assert_expected(table):
    for (index, dataset), want in EXPECTED.items():
        row = _row(table, index, dataset)
        got = {k: row[k] for k in want}
        assert got == pytest.approx(want, rel=1e-12, abs=1e-12), (index, dataset)
        assert row.n_seeds_200ep == want["n_seeds_200ep"]


def _assert_not_evaluated(table, index):
    for dataset in DATASETS:
        row = _row(table, index, dataset)
        assert row.arch_str == ARCHS[index] and row.n_seeds_200ep == 0
        assert row[METRICS].isna().all(), (index, dataset)


# ---------------------------------------------------------------- tests
def test_nb201_values_layout_and_round_trip(table201):
    table = table201
    assert list(table.columns) == list(COLUMNS)
    assert len(table) == 3 * len(ARCHS)
    assert list(table.dataset) == [d for d in DATASETS for _ in ARCHS]
    assert list(table.arch_index) == list(range(len(ARCHS))) * 3
    assert list(table.arch_str) == ARCHS * 3
    assert table.arch_index.dtype == "int64" and table.n_seeds_200ep.dtype == "int64"
    _assert_expected(table)
    _assert_not_evaluated(table, 2)
    evaluated = table[table.arch_index < 2]
    assert (evaluated.sim_cost_12ep_s == evaluated.train_time_12ep_s + evaluated.valid_time_per_epoch_s).all()


def test_nb201_matches_what_the_official_api_reports(files, table201):
    from nas_201_api import NASBench201API

    api = NASBench201API(str(files["nb201"]), verbose=False)
    for row in table201[table201.arch_index < 2].itertuples():
        assert api.query_index_by_arch(row.arch_str) == row.arch_index
        valid = "cifar10-valid" if row.dataset == "cifar10" else row.dataset
        cost = api.get_cost_info(row.arch_index, valid, hp="200")
        assert (row.params_mb, row.flops_m, row.latency_s) == (cost["params"], cost["flops"], cost["latency"])
        # simulate_train_eval samples a seed, but the official pseudo times are seed-independent
        sim = api.simulate_train_eval(row.arch_index, row.dataset, hp="12", account_time=False)
        assert row.sim_cost_12ep_s == pytest.approx(sim[2], rel=1e-12)


def test_nb201_zip_format_reads_the_same(tmp_path, table201):
    path = write_nb201(tmp_path / "renamed.bin", legacy=False)
    pd.testing.assert_frame_equal(read_official(path), table201)


def test_nb201_v1_0_layout_has_no_12_epoch_results_but_costs(tmp_path):
    table = read_official(write_nb201(tmp_path / "NAS-Bench-201-v1_0-e61699.pth",
                                      short_datasets=("cifar10-valid",)))
    evaluated = table[table.arch_index < 2]
    assert evaluated.test_acc_12ep.isna().all()
    assert evaluated[evaluated.dataset != "cifar10"].val_acc_12ep.isna().all()
    for (index, dataset), want in EXPECTED.items():
        row = _row(table, index, dataset)
        if dataset == "cifar10":
            assert row.val_acc_12ep == pytest.approx(want["val_acc_12ep"])
        # 200-epoch columns untouched; the 12-epoch cost falls back to 12 x the hp=200 epoch
        for col in ("val_acc_200ep", "val_acc_200ep_std", "test_acc_200ep", "train_time_12ep_s",
                    "valid_time_per_epoch_s", "sim_cost_12ep_s", "params_mb", "latency_s"):
            assert row[col] == pytest.approx(want[col], rel=1e-12), (index, dataset, col)
    _assert_not_evaluated(table, 2)


def test_nb201_numpy_scalars_survive_torch_weights_only(tmp_path, table201):
    # torch>=2.6 refuses numpy scalars with weights_only=True; the reader retries
    path = write_nb201(tmp_path / "np.pth", latency_type=np.float64)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, map_location="cpu")
    pd.testing.assert_frame_equal(read_official(path), table201)


@pytest.mark.parametrize("kind", ["nats_file", "nats_dir"])
def test_nats_tss_file_and_simple_dir_equal_the_nb201_table(files, table201, kind):
    table = read_official(files[kind])
    _assert_expected(table)
    _assert_not_evaluated(table, 2)
    pd.testing.assert_frame_equal(table, table201)


def test_nats_dir_missing_architecture_file_gives_nan_rows(tmp_path):
    root = write_nats_dir(tmp_path)
    (root / "000001.pickle.pbz2").unlink()
    table = read_official(root)
    _assert_not_evaluated(table, 1)
    assert _row(table, 0, "cifar10").val_acc_12ep == 71.0


def test_export_writes_gzip_and_plain_csv(tmp_path, files, table201):
    gz = tmp_path / "nb201.csv.gz"
    returned = export_table(files["nb201"], gz)
    pd.testing.assert_frame_equal(returned, table201)
    with gzip.open(gz, "rt") as f:
        assert f.readline().strip() == ",".join(COLUMNS)
    back = pd.read_csv(gz)
    assert list(back.arch_str) == list(table201.arch_str)
    np.testing.assert_allclose(back[METRICS].to_numpy(float), table201[METRICS].to_numpy(float),
                               rtol=1e-15, equal_nan=True)
    plain = tmp_path / "nb201.csv"
    export_table(files["nb201"], plain)
    assert plain.read_bytes()[:2] != b"\x1f\x8b"
    pd.testing.assert_frame_equal(pd.read_csv(plain), back)


def test_progress_is_reported_every_n_architectures(files, monkeypatch):
    calls = []
    monkeypatch.setattr(official, "PROGRESS_EVERY_ARCHS", 2)
    read_official(files["nb201"], progress=lambda done, total: calls.append((done, total)))
    assert calls == [(2, 3), (3, 3)]
    with pytest.raises(ValueError, match="progress"):
        read_official(files["nb201"], progress=5)


def test_columns_match_the_shared_reference_table(nb201_table):
    header = pd.read_csv(nb201_table, nrows=3)
    assert list(header.columns) == list(COLUMNS)
    # the official strings of architectures 0-2 are the reference's
    assert list(header.arch_str) == ARCHS


def test_missing_path_raises_file_not_found(tmp_path):
    missing = tmp_path / "NAS-Bench-201-v1_1-096897.pth"
    with pytest.raises(FileNotFoundError, match="NAS-Bench-201-v1_1-096897.pth"):
        read_official(missing)
    with pytest.raises(FileNotFoundError, match="no_such_folder"):
        export_table(missing, tmp_path / "no_such_folder" / "out.csv")


def _bz2(obj) -> bytes:
    return bz2.compress(pickle.dumps(obj))


@pytest.mark.parametrize("name, make", [
    ("text.pth", lambda p: p.write_text("not a benchmark")),
    ("empty.pth", lambda p: p.write_bytes(b"")),
    ("weights.pth", lambda p: torch.save({"conv.weight": torch.zeros(2)}, p)),
    ("junk.pickle.pbz2", lambda p: p.write_bytes(b"BZh9 not really bz2")),
    ("nolayout.pickle.pbz2", lambda p: p.write_bytes(_bz2({"meta_archs": ARCHS}))),
    ("NATS-sss-v1_0-50262.pickle.pbz2", lambda p: p.write_bytes(_bz2(
        {"meta_archs": ["8:16:24:32:40"], "arch2infos": {}, "evaluated_indexes": set()}))),
    ("emptydir", lambda p: p.mkdir()),
])
def test_unreadable_inputs_raise_value_error_naming_path_and_formats(tmp_path, name, make):
    path = tmp_path / name
    make(path)
    with pytest.raises(ValueError) as info:
        read_official(path)
    message = str(info.value)
    assert str(path) in message
    assert "NAS-Bench-201 .pth" in message and "NATS-tss-v1_0-3ffb9-simple" in message


def test_non_path_argument_is_rejected():
    with pytest.raises(ValueError, match="os.PathLike"):
        read_official(42)


def test_nats_fast_mode_keeps_no_architecture_loaded(files, monkeypatch):
    made = []
    real_create = nats_bench.create

    def spy(*args, **kwargs):
        made.append(real_create(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(nats_bench, "create", spy)
    read_official(files["nats_dir"])
    assert made[0].fast_mode and len(made[0].arch2infos_dict) == 0


def test_reading_prints_nothing(files, capfd):
    for kind in ("nb201", "nats_file", "nats_dir"):
        read_official(files[kind])
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")


def test_export_command_writes_the_table(files, tmp_path, capsys):
    from dsmnas.experiments.cli import main

    dst = tmp_path / "exported.csv.gz"
    assert main(["export-nb201", str(files["nb201"]), str(dst)]) == 0
    exported = pd.read_csv(dst)
    pd.testing.assert_frame_equal(exported, read_official(files["nb201"]), check_dtype=False)
    assert f"wrote {len(exported)} rows" in capsys.readouterr().out
    assert main(["export-nb201", str(tmp_path / "missing.pth"), str(dst)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing.pth" in err[0]
