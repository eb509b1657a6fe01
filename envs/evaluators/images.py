"""Image classification data as tensors, for training and scoring OFA supernets on a CPU.

`load_images(data, resolution, split)` reads one split of one data source into memory:

- `"fashion-mnist"`: the Debian package `dataset-fashion-mnist` (idx.gz files under
  `/usr/share/datasets/fashion-mnist/`). A folder holding the four `*-idx?-ubyte.gz` files in
  the same layout is read the same way (MNIST, or a tiny synthetic set in the tests).
- a folder of images with one subfolder per class (`torchvision.datasets.ImageFolder`), with
  optional `train/`, `val/` and `test/` subfolders; a split without its subfolder is carved
  deterministically out of the training images.

Splits: `train` (what supernets are trained on and BatchNorm is recalibrated with), `val` (a
fixed held-out part of the training images: the search reward is measured on it) and `test`
(for reports only). Fashion-MNIST's `val` is the last 5,000 of its 60,000 training images and
`test` its 10,000 t10k images.

Images are resized once to `resolution` and kept as uint8 (grey ones with one channel): 55,000
Fashion-MNIST images in float32 with three channels would take 675 MB instead of 56 MB.
`ImageSet.batch(index)` turns a batch into what the networks take: float32, three channels,
normalised to [-1, 1], channels-last (3-5x faster depthwise convolutions on CPU).
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from dsmnas.envs.errors import ConfigError, MissingFileError
from dsmnas.envs.evaluators import FASHION_MNIST

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_CLASSES = (
    "t-shirt/top", "trouser", "pullover", "dress", "coat",
    "sandal", "shirt", "sneaker", "bag", "ankle boot",
)
IDX_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
IDX_VAL_IMAGES = 5000
"""Fashion-MNIST's `val` split: the last this many training images."""
CARVE_FRACTION = 0.1
"""An image folder without `val/` (or `test/`) gives this fraction of its training images."""
SPLITS = ("train", "val", "test")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp")
_IDX_DTYPE = {0x08: np.uint8}


@dataclass(frozen=True)
class ImageSet:
    """One split in memory: `images` uint8 (N, 1 or 3, R, R), `labels` int64 (N,)."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]
    name: str
    """The data source's name: 'fashion-mnist' or the image folder's name."""

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def resolution(self) -> int:
        return int(self.images.shape[-1])

    def batch(self, index=None, device="cpu", channels_last: bool = True) -> torch.Tensor:
        """Float32 images in [-1, 1] with three channels (all of them when `index` is None)."""
        x = self.images if index is None else self.images[index]
        x = x.to(device=device, dtype=torch.float32).mul_(2.0 / 255.0).sub_(1.0)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        return x.contiguous(memory_format=memory_format)

    def subset(self, index) -> ImageSet:
        index = torch.as_tensor(index, dtype=torch.long)
        return ImageSet(self.images[index], self.labels[index], self.classes, self.name)


def data_name(data: str | None) -> str:
    """The name a data source goes by in results: 'fashion-mnist' or the folder's name."""
    data = _check_data(data)
    return FASHION_MNIST if data == FASHION_MNIST else os.path.basename(os.path.normpath(data))


def resolve_data(data: str | None) -> str:
    """'fashion-mnist', or the absolute path of an image or idx folder (checked to exist)."""
    data = _check_data(data)
    if data == FASHION_MNIST:
        if not _is_idx_folder(FASHION_MNIST_DIR):
            raise MissingFileError(
                f"Fashion-MNIST not found in {FASHION_MNIST_DIR}: install it with `apt-get "
                f"install dataset-fashion-mnist`, or give --data an image folder (one subfolder "
                f"per class)"
            )
        return data
    return os.path.abspath(data)


def load_images(data: str | None, resolution: int, split: str) -> ImageSet:
    """One split (`train`, `val` or `test`) of `data`, resized to `resolution` x `resolution`.

    `data` is 'fashion-mnist' (default when None), a folder of Fashion-MNIST-style idx.gz files
    or an image folder with one subfolder per class.
    """
    if split not in SPLITS:
        raise ConfigError(f"split must be one of {list(SPLITS)}, got {split!r}")
    if not (isinstance(resolution, int) and not isinstance(resolution, bool) and resolution >= 8):
        raise ConfigError(f"resolution must be an integer >= 8 pixels, got {resolution!r}")
    source = resolve_data(data)
    root = FASHION_MNIST_DIR if source == FASHION_MNIST else source
    if _is_idx_folder(root):
        images, labels, classes = _load_idx_split(root, split)
    else:
        images, labels, classes = _load_folder_split(root, split, resolution)
    return ImageSet(_resize(images, resolution), labels, classes, data_name(data))


# -- idx (Fashion-MNIST) ---------------------------------------------------------------------
def read_idx(path: str) -> np.ndarray:
    """An idx(.gz) file (the MNIST format: magic 0 0 dtype ndim, big-endian dims, data)."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPE:
        raise ConfigError(f"{path} is not an unsigned-byte idx file (bad magic number {raw[:4]!r})")
    ndim = raw[3]
    dims = np.frombuffer(raw, dtype=">u4", count=ndim, offset=4).astype(np.int64)
    data = np.frombuffer(raw, dtype=_IDX_DTYPE[raw[2]], offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise ConfigError(f"{path}: header says {dims.tolist()} ({np.prod(dims)} values), "
                         f"file holds {data.size}")
    return data.reshape(dims)


def _is_idx_folder(root: str) -> bool:
    return all(os.path.isfile(os.path.join(root, f)) for pair in IDX_FILES.values() for f in pair)


def _load_idx_split(root: str, split: str):
    image_file, label_file = IDX_FILES["test" if split == "test" else "train"]
    images = read_idx(os.path.join(root, image_file))
    labels = read_idx(os.path.join(root, label_file)).astype(np.int64)
    if images.ndim != 3 or labels.shape != images.shape[:1]:
        raise ConfigError(f"{root}: images {images.shape} and labels {labels.shape} do not pair")
    n_classes = int(labels.max()) + 1  # of the whole file: a split may miss a class
    is_fashion = os.path.isdir(FASHION_MNIST_DIR) and os.path.samefile(root, FASHION_MNIST_DIR)
    classes = FASHION_MNIST_CLASSES if is_fashion else tuple(map(str, range(n_classes)))
    if split != "test":
        n_val = IDX_VAL_IMAGES if len(labels) > 2 * IDX_VAL_IMAGES else len(labels) // 10
        if n_val < 1:
            raise ConfigError(f"{root}: {len(labels)} training images are too few to hold out val")
        cut = slice(-n_val, None) if split == "val" else slice(None, -n_val)
        images, labels = images[cut], labels[cut]
    return torch.from_numpy(images.copy())[:, None], torch.from_numpy(labels.copy()), classes


# -- image folders ---------------------------------------------------------------------------
def _load_folder_split(root: str, split: str, resolution: int):
    from torchvision.datasets import ImageFolder

    has = {s: os.path.isdir(os.path.join(root, s)) for s in SPLITS}
    if (has["val"] or has["test"]) and not has["train"]:
        raise ConfigError(f"{root} has val/ or test/ but no train/ subfolder: put the training "
                         f"images under train/ (or use class subfolders only)")
    pool_root = os.path.join(root, "train") if has["train"] else root
    if not any(entry.is_dir() for entry in os.scandir(pool_root)):
        raise ConfigError(f"{pool_root} holds no class subfolders: an image folder needs one "
                         f"subfolder of images per class (or give 'fashion-mnist')")
    if split != "train" and has[split]:
        folder = ImageFolder(os.path.join(root, split), allow_empty=True)
        files = folder.samples
    else:  # train is the pool less what val/test carve out of it
        folder = ImageFolder(pool_root, allow_empty=True)
        files = _carve(folder.samples, split, carve_val=not has["val"],
                       carve_test=not has["test"], root=root)
    classes = tuple(ImageFolder(pool_root, allow_empty=True).classes)
    if tuple(folder.classes) != classes:
        raise ConfigError(f"{root}: {split}/ has classes {folder.classes}, training images have "
                         f"{list(classes)}; the splits need the same class subfolders")
    if not files:
        raise ConfigError(f"{root}: no images for the {split} split (extensions "
                         f"{', '.join(IMAGE_EXTENSIONS)} in class subfolders)")
    images = torch.stack([_read_image(path, resolution) for path, _ in files])
    labels = torch.tensor([label for _, label in files], dtype=torch.int64)
    return images, labels, classes


def _carve(samples, split, carve_val, carve_test, root):
    """The deterministic part of the training pool that `split` gets: a fixed permutation
    (seed 0) whose first part is test, next val, rest train."""
    n = len(samples)
    if n == 0:
        raise ConfigError(f"{root}: no images for the {split} split (extensions "
                         f"{', '.join(IMAGE_EXTENSIONS)} in class subfolders)")
    order = np.random.default_rng(0).permutation(n)
    n_part = max(1, round(CARVE_FRACTION * n))
    n_test = n_part if carve_test else 0
    n_val = n_part if carve_val else 0
    if n - n_test - n_val < 1:
        raise ConfigError(f"{root}: {n} images are too few to carve out val/test splits; add "
                         f"val/ and test/ subfolders or more images")
    parts = {"test": order[:n_test], "val": order[n_test:n_test + n_val],
             "train": order[n_test + n_val:]}
    return [samples[i] for i in sorted(parts[split])]


def _read_image(path: str, resolution: int) -> torch.Tensor:
    """uint8 (3, R, R): grey and palette images become RGB."""
    from PIL import Image

    with Image.open(path) as im:
        array = np.asarray(im.convert("RGB"), dtype=np.uint8)
    x = torch.from_numpy(array.copy()).permute(2, 0, 1)[None]
    return _resize(x, resolution)[0]


def _resize(images: torch.Tensor, resolution: int) -> torch.Tensor:
    if images.shape[-2:] == (resolution, resolution):
        return images
    out = []
    for chunk in images.split(4096):  # bounds the float copy's memory
        y = F.interpolate(chunk.float(), size=(resolution, resolution), mode="bilinear",
                          align_corners=False, antialias=True)
        out.append(y.round_().clamp_(0, 255).to(torch.uint8))
    return torch.cat(out)


def _check_data(data) -> str:
    if data is None:
        return FASHION_MNIST
    if not isinstance(data, (str, os.PathLike)):
        raise ConfigError(f"data must be {FASHION_MNIST!r} or an image folder path, got {data!r}")
    data = os.fspath(data)
    if data == FASHION_MNIST:
        return data
    if not os.path.isdir(data):
        raise MissingFileError(
            f"data {data!r} is neither {FASHION_MNIST!r} nor an existing folder; allowed: "
            f"{FASHION_MNIST!r} or an image folder with one subfolder per class (optionally "
            f"under train/, val/, test/)"
        )
    return data
