"""Image data, supernet checkpoints, the subnet evaluator and supernet training, on tiny data
written here (idx.gz files and PNG folders); the Debian Fashion-MNIST is only read if present."""

from __future__ import annotations

import gzip
import json
import os
import struct

import numpy as np
import pytest
import torch

from dsmnas.envs.evaluators.supernet import (
    SubnetEvaluator,
    check_arch,
    largest_arch,
    load_checkpoint,
    read_checkpoint,
    recalibrate_bn,
    save_checkpoint,
    smallest_arch,
    top1_percent,
)
from dsmnas.envs.evaluators.images import FASHION_MNIST_DIR, load_images, read_idx
from dsmnas.experiments import cli
from dsmnas.trainables.supernet import train_supernet

torch.set_num_threads(1)

TINY = dict(resolution=16, steps=4, batch_size=8, warmup_steps=1, checkpoint_every=2,
            progress_every=1)


def _write_idx(path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def _idx_folder(root, n_train=60, n_test=20, side=8, n_classes=3):
    """Class c: a bright square in corner c on noise, so the classes can be told apart."""
    rng = np.random.default_rng(0)
    os.makedirs(root, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = np.arange(n) % n_classes
        images = rng.integers(0, 60, size=(n, side, side))
        for i, c in enumerate(labels):
            r, q = divmod(int(c), 2)
            images[i, r * side // 2:(r + 1) * side // 2, q * side // 2:(q + 1) * side // 2] = 250
        _write_idx(os.path.join(root, f"{prefix}-images-idx3-ubyte.gz"), images)
        _write_idx(os.path.join(root, f"{prefix}-labels-idx1-ubyte.gz"), labels)
    return str(root)


@pytest.fixture(scope="module")
def idx_data(tmp_path_factory):
    return _idx_folder(tmp_path_factory.mktemp("idx"))


@pytest.fixture(scope="module")
def trained(idx_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    lines = []
    path = train_supernet(idx_data, str(out), progress=lines.append, seed=1, **TINY)
    return path, lines


# -- image data --------------------------------------------------------------------------------
def test_read_idx_round_trips_and_rejects_other_files(tmp_path):
    a = np.arange(2 * 3 * 4).reshape(2, 3, 4)
    _write_idx(tmp_path / "a.gz", a)
    np.testing.assert_array_equal(read_idx(str(tmp_path / "a.gz")), a)
    (tmp_path / "b.gz").write_bytes(gzip.compress(b"\x1f\x00\x08\x01junk"))
    with pytest.raises(ValueError, match="b.gz is not an unsigned-byte idx"):
        read_idx(str(tmp_path / "b.gz"))


def test_idx_folder_splits_resize_and_batches(idx_data):
    train, val, test = (load_images(idx_data, 16, s) for s in ("train", "val", "test"))
    assert (len(train), len(val), len(test)) == (54, 6, 20)  # val: the last tenth of train
    assert train.images.shape == (54, 1, 16, 16) and train.images.dtype == torch.uint8
    raw = read_idx(os.path.join(idx_data, "train-labels-idx1-ubyte.gz"))
    assert val.labels.tolist() == raw[-6:].tolist()
    x = train.batch(slice(0, 5))
    assert x.shape == (5, 3, 16, 16) and x.dtype == torch.float32
    assert x.is_contiguous(memory_format=torch.channels_last)
    assert -1.0 <= float(x.min()) and float(x.max()) <= 1.0
    assert torch.equal(x[:, 0], x[:, 2])  # grey: three equal channels


def _png_folder(root, n_per_class=10, classes=("cat", "dog")):
    from PIL import Image

    for c, name in enumerate(classes):
        os.makedirs(root / name, exist_ok=True)
        for i in range(n_per_class):
            value = np.full((12, 10), 20 * i + c, dtype=np.uint8)
            mode_image = Image.fromarray(value, "L") if i % 2 else Image.fromarray(
                np.stack([value] * 3, -1), "RGB")
            mode_image.save(root / name / f"{i}.png")
    return root


def test_image_folder_carves_disjoint_deterministic_splits(tmp_path):
    root = _png_folder(tmp_path / "pics")
    splits = {s: load_images(str(root), 8, s) for s in ("train", "val", "test")}
    assert [len(splits[s]) for s in ("train", "val", "test")] == [16, 2, 2]
    assert splits["train"].images.shape[1:] == (3, 8, 8)
    assert splits["train"].classes == ("cat", "dog") and splits["val"].name == "pics"
    # every image lands in exactly one split: pixel value 20 i + c identifies it
    keys = sorted(int(im[0, 0, 0]) for s in splits.values() for im in s.images)
    assert keys == sorted(20 * i + c for c in range(2) for i in range(10))
    again = load_images(str(root), 8, "val")
    assert torch.equal(again.images, splits["val"].images)


def test_image_folder_with_split_subfolders(tmp_path):
    _png_folder(tmp_path / "d" / "train", n_per_class=5)
    _png_folder(tmp_path / "d" / "val", n_per_class=2)
    root = str(tmp_path / "d")
    assert len(load_images(root, 8, "val")) == 4
    assert len(load_images(root, 8, "test")) + len(load_images(root, 8, "train")) == 10
    _png_folder(tmp_path / "d" / "test", n_per_class=1, classes=("cat", "emu"))
    with pytest.raises(ValueError, match="same class subfolders"):
        load_images(root, 8, "test")


def test_bad_data_values_say_what_is_allowed(tmp_path):
    with pytest.raises(FileNotFoundError, match="'cifar10' is neither 'fashion-mnist' nor"):
        load_images("cifar10", 32, "train")
    with pytest.raises(ValueError, match=r"split must be one of \['train', 'val', 'test'\]"):
        load_images(str(tmp_path), 32, "dev")
    with pytest.raises(ValueError, match="resolution must be an integer >= 8"):
        load_images(str(tmp_path), 4, "train")
    with pytest.raises(ValueError, match="holds no class subfolders"):
        load_images(str(tmp_path), 32, "train")
    os.makedirs(tmp_path / "cat")
    with pytest.raises(ValueError, match="no images for the train split"):
        load_images(str(tmp_path), 32, "train")


@pytest.mark.skipif(not os.path.isdir(FASHION_MNIST_DIR), reason="dataset-fashion-mnist absent")
def test_fashion_mnist_splits():
    val = load_images("fashion-mnist", 32, "val")
    test = load_images("fashion-mnist", 32, "test")
    assert (len(val), len(test)) == (5000, 10000)
    assert val.images.shape[1:] == (1, 32, 32) and set(test.labels.tolist()) == set(range(10))


# -- training, checkpoints, resume ---------------------------------------------------------------
def test_training_writes_a_checkpoint_that_loads(trained, idx_data):
    path, lines = trained
    net, meta = load_checkpoint(path)
    assert meta["steps"] == 4 and meta["finished"] and meta["resolution"] == 16
    # the paper's width by default: the one where the 600M MACs limit binds
    assert (meta["width_mult"], meta["n_classes"], meta["data"]) == (1.2, 3, idx_data)
    assert meta["dataset"] == os.path.basename(idx_data) and meta["seed"] == 1
    assert "optimizer" in read_checkpoint(path)
    assert any(line.startswith("step 4/4 loss") and "images/s" in line for line in lines)
    results = json.load(open(os.path.join(os.path.dirname(path), "train.json")))
    assert results["steps"] == 4 and results["subnets_per_step"] == 2
    for acc in results["val_acc"].values():
        assert 0.0 <= acc <= 100.0


def test_resume_takes_exactly_the_uninterrupted_steps(trained, idx_data, tmp_path):
    class Stop(Exception):
        pass

    def stop_at_3(line):
        if line.startswith("step 3/"):
            raise Stop  # after step 2's checkpoint, before step 4's
    with pytest.raises(Stop):
        train_supernet(idx_data, str(tmp_path), progress=stop_at_3, seed=1, **TINY)
    assert read_checkpoint(str(tmp_path / "supernet.pt"))["meta"]["steps"] == 2
    with pytest.raises(ValueError, match="exists: resume it"):
        train_supernet(idx_data, str(tmp_path), progress=None, seed=1, **TINY)
    with pytest.raises(ValueError, match="other settings.*'lr'"):
        train_supernet(idx_data, str(tmp_path), progress=None, resume=True, seed=1,
                       **{**TINY, "lr": 0.5})
    lines = []
    path = train_supernet(idx_data, str(tmp_path), progress=lines.append, resume=True, seed=1,
                          **TINY)
    assert "steps 2..4" in lines[0]
    resumed, uninterrupted = read_checkpoint(path), read_checkpoint(trained[0])
    assert resumed["meta"]["steps"] == 4
    for key, value in uninterrupted["state_dict"].items():
        assert torch.equal(resumed["state_dict"][key], value), key


def test_checkpoint_files_are_checked(tmp_path):
    bad = tmp_path / "x.pt"
    torch.save({"weights": torch.zeros(2)}, bad)
    with pytest.raises(ValueError, match=f"{bad} is not a supernet checkpoint"):
        load_checkpoint(str(bad))
    (tmp_path / "y.pt").write_text("hello")
    with pytest.raises(ValueError, match="y.pt is not a supernet checkpoint"):
        load_checkpoint(str(tmp_path / "y.pt"))
    with pytest.raises(FileNotFoundError, match="train-supernet"):
        load_checkpoint(str(tmp_path / "none.pt"))
    with pytest.raises(ValueError, match="meta lacks"):
        save_checkpoint(str(tmp_path / "z.pt"), torch.nn.Linear(1, 1), {"width_mult": 1.0})


def test_unknown_and_bad_settings_raise(idx_data, tmp_path):
    with pytest.raises(ValueError, match=r"unknown supernet training settings \['epochs'\]"):
        train_supernet(idx_data, str(tmp_path), epochs=3)
    with pytest.raises(ValueError, match="width_mult must be 1.0 or 1.2"):
        train_supernet(idx_data, str(tmp_path), width_mult=0.5)


# -- the evaluator ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def evaluator(trained):
    return SubnetEvaluator(trained[0], calib_images=40, val_images=6, batch_size=16)


def test_evaluator_is_deterministic_and_order_free(evaluator):
    rng = np.random.default_rng(0)
    archs = [largest_arch(), smallest_arch()] + [
        {"ks": rng.choice([3, 5, 7], 20).tolist(), "e": rng.choice([3, 4, 6], 20).tolist(),
         "d": rng.choice([2, 3, 4], 5).tolist()} for _ in range(2)]
    first = evaluator.evaluate(archs)
    second = evaluator.evaluate(archs[::-1])[::-1]
    assert first == second
    assert all(0.0 <= a <= 100.0 for a in first)
    assert all(a * 6 / 100 == pytest.approx(round(a * 6 / 100)) for a in first)  # k of 6 images
    assert evaluator.resolution == 16 and evaluator.meta["steps"] == 4
    assert (evaluator.n_calib, evaluator.n_val, evaluator.evaluations) == (40, 6, 8)
    assert 0.0 <= evaluator.test_accuracy(archs[2]) <= 100.0


def test_active_subnet_matches_the_extracted_subnet(evaluator):
    """What `evaluate` assumes of `ofa`: running the supernet with an active subnet is the
    subnet (weights sliced, BN statistics recalibrated and copied by get_active_subnet)."""
    arch = {"ks": [7, 3, 5, 5] * 5, "e": [3, 6, 4, 6] * 5, "d": [2, 3, 4, 3, 2]}
    evaluator.activate(arch)
    subnet = evaluator.net.get_active_subnet(preserve_weight=True).eval()
    x = evaluator.val.batch()
    with torch.no_grad():
        np.testing.assert_allclose(subnet(x).numpy(), evaluator.net(x).numpy(), atol=1e-4)
    assert top1_percent(subnet, evaluator.val, 16) == evaluator.evaluate([arch])[0]
    # the recalibrated statistics are the calibration images' own, not the training ones
    recalibrate_bn(subnet, [evaluator.calib.batch()])
    bn = subnet.first_conv.bn
    with torch.no_grad():
        feats = subnet.first_conv.conv(evaluator.calib.batch())
    torch.testing.assert_close(bn.running_mean, feats.mean((0, 2, 3)), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("arch, match", [
    ({"ks": [3] * 19, "e": [3] * 20, "d": [2] * 5}, "'ks' must be 20 values in"),
    ({"ks": [4] * 20, "e": [3] * 20, "d": [2] * 5}, r"'ks' must be 20 values in \[3, 5, 7\]"),
    ({"ks": [3] * 20, "e": [5] * 20, "d": [2] * 5}, r"'e' must be 20 values in \[3, 4, 6\]"),
    ({"ks": [3] * 20, "e": [3] * 20, "d": [5] * 5}, r"'d' must be 5 values in \[2, 3, 4\]"),
    ({"ks": [3] * 20, "e": [3] * 20}, "not an ofa subnet dict"),
    ({"ks": "abc", "e": [3] * 20, "d": [2] * 5}, "list of integers"),
])
def test_bad_archs_raise(evaluator, arch, match):
    with pytest.raises(ValueError, match=match):
        evaluator.evaluate([largest_arch(), arch])
    with pytest.raises(ValueError, match=match):
        check_arch(arch)


def test_cli_subcommand(idx_data, tmp_path):
    argv = ["train-supernet", "--data", idx_data, "--out", str(tmp_path), "--resolution", "16",
            "--steps", "1", "--batch-size", "4", "--quiet", "--threads", "1"]
    assert cli.main(argv) == 0
    assert load_checkpoint(str(tmp_path / "supernet.pt"))[1]["steps"] == 1
