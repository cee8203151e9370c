"""Datasets for the training examples: an IDX reader (the MNIST file format, gzipped or not),
MNIST and Fashion-MNIST from IDX files, scikit-learn's small digits dataset (the default: it
installs with pip), standardization and train/test splits.

Every loader returns a :class:`Dataset` with float32 features of shape (N, D) and int32
labels; images are flattened and scaled to [0, 1].
"""
from __future__ import annotations

import gzip
import os
from dataclasses import dataclass, field

import numpy as np

#: where Debian's ``dataset-fashion-mnist`` package installs its files (``dpkg -L dataset-fashion-mnist``)
DEBIAN_FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"

# IDX element types: the third byte of the magic number
_IDX_DTYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
               0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}

_MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

OPTIONS_HINT = ("Options: use the default dataset with `--dataset digits` (bundled with scikit-learn); "
                "point `--data-dir` at a folder holding the four IDX files "
                "(train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, "
                "t10k-labels-idx1-ubyte, each optionally .gz); or, for Fashion-MNIST on Debian/Ubuntu, "
                "`apt-get install dataset-fashion-mnist`, which puts them in " + DEBIAN_FASHION_MNIST_DIR + ".")


class DatasetError(Exception):
    """A dataset is missing or its files are malformed; the message names the path and the options."""


@dataclass
class Dataset:
    """Features and labels split into train and test parts."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int
    source: str = ""
    info: dict = field(default_factory=dict)

    @property
    def n_features(self) -> int:
        """The number of input features per example."""
        return int(self.x_train.shape[1])

    def __repr__(self) -> str:
        return (f"Dataset({self.name!r}, train={self.x_train.shape}, test={self.x_test.shape}, "
                f"classes={self.n_classes}, source={self.source!r})")


def _open(path: str):
    with open(path, "rb") as f:
        gzipped = f.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gzipped else open(path, "rb")


def read_idx(path: str) -> np.ndarray:
    """Read one IDX file (gzipped or not) into an array; malformed files raise DatasetError."""
    try:
        with _open(path) as f:
            data = f.read()
    except FileNotFoundError:
        raise DatasetError(f"IDX file not found: {path}") from None
    except (OSError, EOFError) as e:  # a truncated or corrupt gzip stream
        raise DatasetError(f"cannot read IDX file {path}: {e}") from None
    if len(data) < 4:
        raise DatasetError(f"{path}: not an IDX file (only {len(data)} bytes)")
    zero0, zero1, code, ndim = data[0], data[1], data[2], data[3]
    if zero0 != 0 or zero1 != 0 or code not in _IDX_DTYPES or ndim == 0:
        raise DatasetError(f"{path}: bad IDX magic number 0x{data[:4].hex()} (expected 0x0000TTNN: two zero bytes, "
                           f"a type code among {', '.join(hex(c) for c in _IDX_DTYPES)}, and the number of dimensions)")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DatasetError(f"{path}: truncated IDX header ({len(data)} bytes, {header} needed for {ndim} dimensions)")
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = _IDX_DTYPES[code]
    expected = int(np.prod(shape)) * dtype.itemsize
    body = len(data) - header
    if body < expected:
        raise DatasetError(f"{path}: truncated IDX file: shape {shape} of {dtype.name} needs {expected} bytes of data, "
                           f"found {body}")
    if body > expected:
        raise DatasetError(f"{path}: {body - expected} unexpected bytes after the data of shape {shape}")
    return np.frombuffer(data, dtype=dtype, count=int(np.prod(shape)), offset=header).reshape(shape).astype(
        dtype.newbyteorder("="))


def write_idx(path: str, array: np.ndarray, compress: bool | None = None) -> None:
    """Write ``array`` as an IDX file (gzipped when ``compress`` or the name ends in .gz)."""
    array = np.asarray(array)
    native = array.dtype.newbyteorder("=")
    code = next((k for k, v in _IDX_DTYPES.items() if v.newbyteorder("=") == native), None)
    if code is None:
        raise ValueError(f"write_idx: dtype {array.dtype} has no IDX type code (uint8, int8, int16, int32, "
                         f"float32 or float64)")
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    payload = header + array.astype(_IDX_DTYPES[code]).tobytes()
    if compress is None:
        compress = path.endswith(".gz")
    with (gzip.open(path, "wb") if compress else open(path, "wb")) as f:
        f.write(payload)


def _find(directory: str, stem: str) -> str | None:
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        p = os.path.join(directory, name)
        if os.path.isfile(p):
            return p
    return None


def load_idx_dir(directory: str, name: str = "mnist", flatten: bool = True) -> Dataset:
    """Load the four MNIST-format IDX files from ``directory`` (their standard names, .gz optional)."""
    if not os.path.isdir(directory):
        raise DatasetError(f"{name}: the folder {directory} does not exist. {OPTIONS_HINT}")
    paths = {}
    for key, stem in _MNIST_FILES.items():
        p = _find(directory, stem)
        if p is None:
            raise DatasetError(f"{name}: {os.path.join(directory, stem)}[.gz] not found. {OPTIONS_HINT}")
        paths[key] = p
    arrays = {}
    for key, p in paths.items():
        try:
            arrays[key] = read_idx(p)
        except DatasetError as e:
            raise DatasetError(f"{name}: {e}. {OPTIONS_HINT}") from None
    parts = []
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if labels.ndim != 1:
            raise DatasetError(f"{name}: {paths[split + '_labels']} holds an array of shape {labels.shape}; "
                               f"labels must be one-dimensional. {OPTIONS_HINT}")
        if images.ndim < 2:
            raise DatasetError(f"{name}: {paths[split + '_images']} holds an array of shape {images.shape}; "
                               f"images need at least two dimensions. {OPTIONS_HINT}")
        if len(images) != len(labels):
            raise DatasetError(f"{name}: {paths[split + '_images']} holds {len(images)} images but "
                               f"{paths[split + '_labels']} holds {len(labels)} labels. {OPTIONS_HINT}")
        x = images.astype(np.float32)
        if images.dtype == np.uint8:
            x /= 255.0
        parts.append((x.reshape(len(x), -1) if flatten else x, labels.astype(np.int32)))
    (x_train, y_train), (x_test, y_test) = parts
    n_classes = int(max(y_train.max(initial=0), y_test.max(initial=0))) + 1
    return Dataset(name, x_train, y_train, x_test, y_test, n_classes, source=directory,
                   info={"image_shape": tuple(arrays["train_images"].shape[1:])})


def load_mnist(directory: str) -> Dataset:
    """MNIST from the four IDX files in ``directory``."""
    if directory is None:
        raise DatasetError(f"mnist: no folder given (use --data-dir DIR). {OPTIONS_HINT}")
    return load_idx_dir(directory, "mnist")


def load_fashion_mnist(directory: str | None = None) -> Dataset:
    """Fashion-MNIST from ``directory``, or from where Debian's dataset-fashion-mnist package puts it."""
    if directory is None:
        if not os.path.isdir(DEBIAN_FASHION_MNIST_DIR):
            raise DatasetError(f"fashion-mnist: no folder given and {DEBIAN_FASHION_MNIST_DIR} (the Debian package "
                               f"dataset-fashion-mnist) does not exist. {OPTIONS_HINT}")
        directory = DEBIAN_FASHION_MNIST_DIR
    return load_idx_dir(directory, "fashion-mnist")


def train_test_split(x: np.ndarray, y: np.ndarray, test_fraction: float = 0.2, seed: int = 0,
                     stratify: bool = True):
    """Shuffle and split into (x_train, y_train, x_test, y_test); stratified by label by default."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"train_test_split: test_fraction must lie in (0, 1), got {test_fraction}")
    if len(x) != len(y):
        raise ValueError(f"train_test_split: {len(x)} examples but {len(y)} labels")
    rng = np.random.default_rng(seed)
    if stratify:
        test_idx = []
        for label in np.unique(y):
            idx = rng.permutation(np.flatnonzero(y == label))
            test_idx.append(idx[: int(round(len(idx) * test_fraction))])
        test_idx = np.sort(np.concatenate(test_idx))
    else:
        test_idx = np.sort(rng.permutation(len(x))[: int(round(len(x) * test_fraction))])
    mask = np.zeros(len(x), dtype=bool)
    mask[test_idx] = True
    train_idx = rng.permutation(np.flatnonzero(~mask))
    return x[train_idx], y[train_idx], x[test_idx], y[test_idx]


def standardize(x_train: np.ndarray, *others: np.ndarray, eps: float = 1e-7):
    """Scale every feature to zero mean and unit variance using the statistics of ``x_train``.

    Constant features (zero variance, like MNIST's border pixels) are only centred.
    Returns the transformed arrays in the order given."""
    mean = x_train.mean(axis=0, keepdims=True)
    std = x_train.std(axis=0, keepdims=True)
    std = np.where(std < eps, 1.0, std).astype(x_train.dtype)
    out = [((a - mean) / std).astype(x_train.dtype) for a in (x_train, *others)]
    return out[0] if not others else tuple(out)


def load_digits(test_fraction: float = 0.2, seed: int = 0) -> Dataset:
    """scikit-learn's 8x8 handwritten digits (1,797 images, 64 features), split and scaled to [0, 1]."""
    try:
        from sklearn.datasets import load_digits as sk_load_digits
    except ImportError:  # pragma: no cover - scikit-learn is a dependency
        raise DatasetError(f"digits: scikit-learn is not installed (pip install scikit-learn). {OPTIONS_HINT}") from None
    bunch = sk_load_digits()
    x = (bunch.data / 16.0).astype(np.float32)
    y = bunch.target.astype(np.int32)
    x_train, y_train, x_test, y_test = train_test_split(x, y, test_fraction, seed)
    return Dataset("digits", x_train, y_train, x_test, y_test, 10, source="sklearn.datasets.load_digits",
                   info={"image_shape": (8, 8)})


DATASETS = ("digits", "mnist", "fashion-mnist")


def load(name: str, directory: str | None = None, seed: int = 0) -> Dataset:
    """Load a dataset by name: "digits", "mnist" (needs ``directory``) or "fashion-mnist"."""
    if name == "digits":
        return load_digits(seed=seed)
    if name == "mnist":
        return load_mnist(directory)
    if name == "fashion-mnist":
        return load_fashion_mnist(directory)
    raise DatasetError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
