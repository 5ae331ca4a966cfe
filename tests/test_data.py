"""reprolib.data: parsers on synthetic files, every error path, and the real mirror."""
from __future__ import annotations

import gzip
import hashlib
import pickle
import struct

import numpy as np
import pytest
import torch

from reprolib import data
from reprolib.data import DataFileError


def _idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


@pytest.fixture
def synthetic_mnist(tmp_path, monkeypatch):
    """A mirror holding small valid MNIST IDX files, with the content checksums patched to match."""
    rng = np.random.default_rng(0)
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    arrays = {}
    sums = {}
    for prefix, n in (("train", 12), ("t10k", 7)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        for kind, arr in (("images-idx3", images), ("labels-idx1", labels)):
            name = f"{prefix}-{kind}-ubyte.gz"
            (raw / name).write_bytes(gzip.compress(_idx_bytes(arr), mtime=0))
            sums[name] = hashlib.md5(_idx_bytes(arr)).hexdigest()
        arrays[prefix] = (images, labels)
    monkeypatch.setenv("REPROLIB_DATA_MIRROR", str(tmp_path))
    monkeypatch.setenv("REPROLIB_DATA_DIR", str(tmp_path / "downloads"))
    monkeypatch.setattr(data, "MNIST_CONTENT_MD5", sums)
    data._mnist_arrays.cache_clear()
    yield raw, arrays
    data._mnist_arrays.cache_clear()


def test_mnist_parser_reads_synthetic_idx_exactly(synthetic_mnist):
    _, arrays = synthetic_mnist
    test = data.load("mnist", "test")
    images, labels = arrays["t10k"]
    assert test.x.shape == (7, 1, 28, 28) and test.x.dtype == torch.float32
    assert torch.equal((test.x * 255).round().to(torch.uint8)[:, 0], torch.from_numpy(images))
    assert torch.equal(test.x, torch.from_numpy(images[:, None]).float() / 255)
    assert torch.equal(test.y, torch.from_numpy(labels).long())
    assert len(data.load("mnist", "train")) == 12


def test_mnist32_is_mnist_with_a_two_pixel_zero_border(synthetic_mnist):
    plain, padded = data.load("mnist", "test"), data.load("mnist32", "test")
    assert padded.x.shape == (7, 1, 32, 32) and padded.x.dtype == torch.float32
    assert torch.equal(padded.x[..., 2:-2, 2:-2], plain.x)
    border = padded.x.clone()
    border[..., 2:-2, 2:-2] = 0
    assert not border.any()
    assert torch.equal(padded.y, plain.y) and padded.classes == plain.classes
    assert len(data.load("mnist32", "train")) == 12


def test_mnist_wrong_checksum_names_file_and_sums_and_keeps_file(synthetic_mnist, monkeypatch):
    raw, _ = synthetic_mnist
    path = raw / "t10k-labels-idx1-ubyte.gz"
    before = path.read_bytes()
    good = data.MNIST_CONTENT_MD5[path.name]
    monkeypatch.setitem(data.MNIST_CONTENT_MD5, path.name, "0" * 32)
    with pytest.raises(DataFileError) as err:
        data.load("mnist", "test")
    message = str(err.value)
    assert str(path) in message and "0" * 32 in message and good in message
    assert "REPROLIB_DATA_MIRROR" in message
    assert path.read_bytes() == before


def test_mnist_missing_file_lists_where_it_looked(synthetic_mnist, tmp_path):
    raw, _ = synthetic_mnist
    (raw / "t10k-images-idx3-ubyte.gz").rename(tmp_path / "moved.gz")
    with pytest.raises(DataFileError) as err:
        data.load("mnist", "test")
    message = str(err.value)
    assert "t10k-images-idx3-ubyte.gz" in message and str(raw.parent.parent) in message
    assert "downloads" in message and "Downloads are off" in message


@pytest.mark.parametrize("payload, problem", [
    (b"\x00\x00\x08\x03" + b"\x00" * 7, "is truncated"),  # truncated header
    (b"\x00\x00\x08\x03" + struct.pack(">3I", 2, 28, 28) + b"\x00" * 9, "declares shape"),  # short body
    (b"\x00\x00\x09\x03" + b"\x00" * 12, "not an IDX file"),  # wrong type byte
])
def test_mnist_corrupt_idx_content(synthetic_mnist, monkeypatch, payload, problem):
    raw, _ = synthetic_mnist
    path = raw / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(payload, mtime=0))
    monkeypatch.setitem(data.MNIST_CONTENT_MD5, path.name, hashlib.md5(payload).hexdigest())
    with pytest.raises(DataFileError, match=problem):
        data.load("mnist", "test")


def test_mnist_is_checked_by_content_not_by_compression(synthetic_mnist):
    raw, arrays = synthetic_mnist
    path = raw / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes()), compresslevel=1, mtime=12345))
    assert torch.equal(data.load("mnist", "test").y, torch.from_numpy(arrays["t10k"][1]).long())


def test_unreadable_data_file_is_a_data_file_error(synthetic_mnist, monkeypatch):
    raw, _ = synthetic_mnist
    path = raw / "t10k-images-idx3-ubyte.gz"
    real_open = gzip.open

    def refuse(name, *args, **kw):
        if str(name) == str(path):
            raise PermissionError(13, "Permission denied", str(name))
        return real_open(name, *args, **kw)

    monkeypatch.setattr(data.gzip, "open", refuse)
    with pytest.raises(DataFileError, match="Permission denied"):
        data.load("mnist", "test")
    with pytest.raises(DataFileError, match="Check its permissions"):
        monkeypatch.setattr("builtins.open", lambda *a, **k: (_ for _ in ()).throw(PermissionError(13, "no")))
        data.md5sum(path)


def test_mnist_truncated_gzip(synthetic_mnist, monkeypatch):
    raw, _ = synthetic_mnist
    path = raw / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:40])
    monkeypatch.setitem(data.MNIST_MD5, path.name, data.md5sum(path))
    with pytest.raises(DataFileError, match="Cannot read IDX file"):
        data.load("mnist", "test")


@pytest.fixture
def synthetic_cifar(tmp_path, monkeypatch):
    rng = np.random.default_rng(1)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    sums, batches = {}, {}
    for name in list(data.CIFAR10_CONTENT_MD5):
        pixels = rng.integers(0, 256, size=(4, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, size=4)]
        with open(folder / name, "wb") as fh:
            pickle.dump({b"batch_label": b"x", b"labels": labels, b"data": pixels}, fh, protocol=4)
        sums[name] = (hashlib.md5(pixels.tobytes()).hexdigest(),
                      hashlib.md5(np.array(labels, np.uint8).tobytes()).hexdigest())
        batches[name] = (pixels, labels)
    monkeypatch.setenv("REPROLIB_DATA_MIRROR", str(tmp_path))
    monkeypatch.setenv("REPROLIB_DATA_DIR", str(tmp_path / "downloads"))
    monkeypatch.setattr(data, "CIFAR10_CONTENT_MD5", sums)
    data._cifar_arrays.cache_clear()
    yield folder, batches
    data._cifar_arrays.cache_clear()


def test_cifar_parser_reads_synthetic_batches_exactly(synthetic_cifar):
    _, batches = synthetic_cifar
    train = data.load("cifar10", "train")
    assert train.x.shape == (20, 3, 32, 32)
    pixels, labels = batches["data_batch_2"]
    assert torch.equal(train.x[4:8], torch.from_numpy(pixels.reshape(4, 3, 32, 32)).float() / 255)
    assert train.y[4:8].tolist() == labels
    assert len(data.load("cifar10", "test")) == 4


def test_cifar_content_mismatch_reports_both_sums(synthetic_cifar, monkeypatch):
    folder, _ = synthetic_cifar
    good = data.CIFAR10_CONTENT_MD5["test_batch"]
    monkeypatch.setitem(data.CIFAR10_CONTENT_MD5, "test_batch", ("a" * 32, good[1]))
    with pytest.raises(DataFileError) as err:
        data.load("cifar10", "test")
    message = str(err.value)
    assert str(folder / "test_batch") in message and "a" * 32 in message and good[0] in message


class _RunsCode:
    """A pickle payload that would run a command when unpickled by an unrestricted loader."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os
        return os.system, (f"touch {self.marker}",)


def test_a_crafted_cifar_batch_runs_nothing(synthetic_cifar, tmp_path):
    folder, _ = synthetic_cifar
    marker = tmp_path / "ran"
    with open(folder / "test_batch", "wb") as fh:
        pickle.dump({b"batch_label": b"x", b"labels": [0], b"data": _RunsCode(marker)}, fh, protocol=4)
    with pytest.raises(DataFileError, match="refused to load posix.system|refused to load os.system"):
        data.load("cifar10", "test")
    assert not marker.exists()


def test_cifar_corrupt_and_missing_batches(synthetic_cifar):
    folder, _ = synthetic_cifar
    (folder / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(DataFileError, match="Cannot read CIFAR-10 batch"):
        data.load("cifar10", "test")
    (folder / "data_batch_3").unlink()
    with pytest.raises(DataFileError, match="data_batch_3 is missing"):
        data.load("cifar10", "train")


def test_missing_cifar_folder_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("REPROLIB_DATA_MIRROR", str(tmp_path / "nowhere"))
    monkeypatch.setenv("REPROLIB_DATA_DIR", str(tmp_path / "downloads"))
    data._cifar_arrays.cache_clear()
    with pytest.raises(DataFileError, match="cifar-10-batches-py not found"):
        data.load("cifar10", "test")
    data._cifar_arrays.cache_clear()


def test_unknown_dataset_and_split():
    with pytest.raises(ValueError, match="choose one of"):
        data.load("svhn")
    with pytest.raises(ValueError, match="'train' or 'test'"):
        data.load("mnist", "val")


MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_real_mnist_from_mirror(mirror):
    test = data.load("mnist", "test")
    train = data.load("mnist", "train")
    assert test.x.shape == (10000, 1, 28, 28) and train.x.shape == (60000, 1, 28, 28)
    assert torch.bincount(test.y).tolist() == MNIST_TEST_COUNTS
    assert test.x.min() == 0 and test.x.max() == 1
    assert torch.equal((test.x * 255).round() / 255, test.x)  # uint8 exactness
    assert test.y[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]


def test_real_cifar10_from_mirror(mirror):
    test = data.load("cifar10", "test")
    train = data.load("cifar10", "train")
    assert test.x.shape == (10000, 3, 32, 32) and train.x.shape == (50000, 3, 32, 32)
    assert torch.bincount(test.y).tolist() == [1000] * 10
    assert torch.bincount(train.y).tolist() == [5000] * 10
    assert test.y[:5].tolist() == [3, 8, 8, 0, 6]  # cat, ship, ship, airplane, frog


def test_subset_helpers_are_deterministic(mirror):
    test = data.load("mnist", "test")
    assert data.first_n(test, 5).indices.tolist() == [0, 1, 2, 3, 4]
    balanced = data.class_balanced(test, 3)
    assert torch.bincount(balanced.y).tolist() == [3] * 10
    assert balanced.y[:10].tolist() == list(range(10))
    seeded = data.class_balanced(test, 3, seed=7)
    assert torch.equal(seeded.indices, data.class_balanced(test, 3, seed=7).indices)
    assert not torch.equal(seeded.indices, balanced.indices)
    with pytest.raises(ValueError):
        data.first_n(test, 0)


def test_first_correct_skips_misclassified():
    x = torch.rand(10, 1, 2, 2)
    y = torch.arange(10) % 2
    wrong = {1, 4, 5}

    class Oracle(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, xb):  # predicts the label of the row it recognises, flipped for `wrong`
            rows = [int(torch.nonzero((x == r).flatten(1).all(1))[0]) for r in xb]
            pred = torch.tensor([(y[i] + (i in wrong)) % 2 for i in rows])
            return torch.nn.functional.one_hot(pred, 2).float()

    images = data.ImageSet("toy", x, y, torch.arange(10), ("a", "b"))
    picked = data.first_correct(Oracle(), images, 5, batch_size=3)
    assert picked.indices.tolist() == [0, 2, 3, 6, 7]
    with pytest.raises(ValueError, match="only 7"):
        data.first_correct(Oracle(), images, 8)


def test_unreachable_download_is_a_clear_error_and_leaves_nothing(tmp_path, monkeypatch):
    def refuse(url, timeout=None):
        raise OSError("Name or service not known")  # what urllib raises without a network

    monkeypatch.setattr(data.urllib.request, "urlopen", refuse)
    dest = tmp_path / "train-images-idx3-ubyte.gz"
    with pytest.raises(data.DataFileError, match="Could not download .*REPROLIB_DATA_MIRROR"):
        data._download("https://example.invalid/x.gz", dest, "0" * 32)
    assert list(tmp_path.iterdir()) == []  # neither the file nor a partial download
