"""minigraph.datasets: the IDX reader on files the tests write, the loaders' lookups and error
messages, standardization and splits."""
import gzip
import os

import numpy as np
import pytest

from minigraph import datasets as D
from minigraph.datasets import DatasetError, read_idx, write_idx


def _write_mnist_dir(path, n_train=12, n_test=5, gz=True, shape=(4, 3), seed=0):
    rng = np.random.default_rng(seed)
    os.makedirs(path, exist_ok=True)
    suffix = ".gz" if gz else ""
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, *shape), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, *shape), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    for name, a in arrays.items():
        write_idx(os.path.join(path, name + suffix), a)
    return arrays


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("dtype", ["uint8", "int8", "int16", "int32", "float32", "float64"])
def test_idx_round_trip(tmp_path, gz, dtype):
    a = (np.arange(24).reshape(2, 3, 4) - 5).astype(dtype)
    if dtype == "uint8":
        a = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    path = str(tmp_path / ("a.idx" + (".gz" if gz else "")))
    write_idx(path, a)
    with open(path, "rb") as f:
        assert (f.read(2) == b"\x1f\x8b") == gz
    b = read_idx(path)
    assert b.dtype == a.dtype and b.shape == a.shape
    np.testing.assert_array_equal(a, b)


def test_idx_header_is_big_endian_mnist_layout(tmp_path):
    path = str(tmp_path / "labels")
    write_idx(path, np.array([3, 1, 4], dtype=np.uint8))
    raw = open(path, "rb").read()
    assert raw[:4] == bytes([0, 0, 0x08, 1])  # MNIST's label magic 0x00000801
    assert raw[4:8] == (3).to_bytes(4, "big") and raw[8:] == bytes([3, 1, 4])


def test_idx_bad_magic(tmp_path):
    path = tmp_path / "bad"
    path.write_bytes(b"\x12\x34\x08\x01" + (3).to_bytes(4, "big") + b"abc")
    with pytest.raises(DatasetError, match="bad IDX magic number 0x12340801"):
        read_idx(str(path))
    path.write_bytes(b"\x00\x00\x07\x01" + (1).to_bytes(4, "big") + b"a")  # unknown type code
    with pytest.raises(DatasetError, match="bad IDX magic"):
        read_idx(str(path))


def test_idx_truncated(tmp_path):
    path = tmp_path / "t"
    write_idx(str(path), np.zeros((3, 4), dtype=np.uint8))
    full = path.read_bytes()
    path.write_bytes(full[:-1])
    with pytest.raises(DatasetError, match=r"truncated IDX file: shape \(3, 4\) of uint8 needs 12 bytes of data, found 11"):
        read_idx(str(path))
    path.write_bytes(full[:6])  # inside the dimension list
    with pytest.raises(DatasetError, match="truncated IDX header"):
        read_idx(str(path))
    path.write_bytes(full + b"x")
    with pytest.raises(DatasetError, match="1 unexpected bytes"):
        read_idx(str(path))
    path.write_bytes(b"\x00\x00")
    with pytest.raises(DatasetError, match="not an IDX file"):
        read_idx(str(path))


def test_idx_truncated_gzip_stream(tmp_path):
    path = tmp_path / "t.gz"
    path.write_bytes(gzip.compress(b"\x00\x00\x08\x01" + (1000).to_bytes(4, "big") + bytes(1000))[:-30])
    with pytest.raises(DatasetError, match="t.gz"):
        read_idx(str(path))


def test_idx_missing_file(tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        read_idx(str(tmp_path / "nope"))


@pytest.mark.parametrize("gz", [False, True])
def test_load_mnist_from_dir(tmp_path, gz):
    arrays = _write_mnist_dir(str(tmp_path), gz=gz)
    ds = D.load_mnist(str(tmp_path))
    assert ds.x_train.shape == (12, 12) and ds.x_test.shape == (5, 12)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int32
    np.testing.assert_allclose(ds.x_train, arrays["train-images-idx3-ubyte"].reshape(12, -1) / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(ds.y_test, arrays["t10k-labels-idx1-ubyte"])
    assert ds.n_features == 12 and ds.info["image_shape"] == (4, 3)


def test_mismatched_image_and_label_counts(tmp_path):
    _write_mnist_dir(str(tmp_path), gz=False)
    write_idx(str(tmp_path / "t10k-labels-idx1-ubyte"), np.zeros(4, dtype=np.uint8))
    with pytest.raises(DatasetError, match=r"holds 5 images but .*t10k-labels-idx1-ubyte holds 4 labels"):
        D.load_mnist(str(tmp_path))


def test_missing_dataset_messages_name_path_and_options(tmp_path):
    with pytest.raises(DatasetError) as e:
        D.load_mnist(str(tmp_path / "missing"))
    msg = str(e.value)
    assert str(tmp_path / "missing") in msg and "--dataset digits" in msg and "--data-dir" in msg
    assert "dataset-fashion-mnist" in msg
    _write_mnist_dir(str(tmp_path / "partial"))
    os.remove(tmp_path / "partial" / "train-labels-idx1-ubyte.gz")
    with pytest.raises(DatasetError, match="train-labels-idx1-ubyte.*not found"):
        D.load_mnist(str(tmp_path / "partial"))
    with pytest.raises(DatasetError, match="--data-dir"):
        D.load_mnist(None)
    with pytest.raises(DatasetError, match="unknown dataset 'cifar'"):
        D.load("cifar")


def test_fashion_mnist_finds_the_debian_package_folder(tmp_path, monkeypatch):
    _write_mnist_dir(str(tmp_path / "fm"), n_train=7, n_test=3)
    monkeypatch.setattr(D, "DEBIAN_FASHION_MNIST_DIR", str(tmp_path / "fm"))
    ds = D.load_fashion_mnist()
    assert ds.name == "fashion-mnist" and ds.x_train.shape == (7, 12) and ds.source == str(tmp_path / "fm")
    monkeypatch.setattr(D, "DEBIAN_FASHION_MNIST_DIR", str(tmp_path / "absent"))
    with pytest.raises(DatasetError, match="absent.*dataset-fashion-mnist"):
        D.load_fashion_mnist()


@pytest.mark.skipif(not os.path.isdir(D.DEBIAN_FASHION_MNIST_DIR), reason="dataset-fashion-mnist is not installed")
def test_installed_fashion_mnist():
    ds = D.load_fashion_mnist()
    assert ds.x_train.shape == (60000, 784) and ds.x_test.shape == (10000, 784) and ds.n_classes == 10
    assert 0.0 <= ds.x_train.min() and ds.x_train.max() <= 1.0


def test_load_digits():
    ds = D.load_digits()
    assert ds.x_train.shape[1] == 64 and len(ds.x_train) + len(ds.x_test) == 1797
    assert ds.x_train.dtype == np.float32 and 0 <= ds.x_train.min() and ds.x_train.max() <= 1
    assert set(np.unique(ds.y_test)) == set(range(10))
    again = D.load_digits()
    np.testing.assert_array_equal(ds.y_train, again.y_train)  # the split is deterministic


def test_train_test_split_is_a_stratified_partition():
    x = np.arange(100, dtype=np.float32)[:, None]
    y = np.repeat(np.arange(4), 25).astype(np.int32)
    x_tr, y_tr, x_te, y_te = D.train_test_split(x, y, 0.2, seed=3)
    assert len(x_te) == 20 and len(x_tr) == 80
    assert sorted(np.concatenate([x_tr, x_te])[:, 0].tolist()) == list(range(100))
    np.testing.assert_array_equal(np.bincount(y_te), [5, 5, 5, 5])
    np.testing.assert_array_equal(y_tr, y[x_tr[:, 0].astype(int)])  # labels travel with their rows
    with pytest.raises(ValueError, match="test_fraction"):
        D.train_test_split(x, y, 1.5)


def test_standardize_uses_train_statistics():
    rng = np.random.default_rng(0)
    x_train = rng.normal(3.0, 2.0, (200, 3)).astype(np.float32)
    x_train[:, 2] = 7.0  # a constant feature: centred, not divided by zero
    x_test = rng.normal(3.0, 2.0, (50, 3)).astype(np.float32)
    a, b = D.standardize(x_train, x_test)
    np.testing.assert_allclose(a.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(a[:, :2].std(axis=0), 1, rtol=1e-4)
    assert np.all(a[:, 2] == 0) and np.all(np.isfinite(b))
    mean, std = x_train.mean(axis=0), x_train.std(axis=0)
    np.testing.assert_allclose(b[:, 0], (x_test[:, 0] - mean[0]) / std[0], rtol=1e-5)
