"""MNIST and CIFAR-10 from their canonical files, verified by checksum.

Files are looked up in this order:

1. the mirror folder named by ``REPROLIB_DATA_MIRROR`` (torchvision layout, read only);
2. the download folder ``REPROLIB_DATA_DIR`` (default ``~/.cache/reprolib/datasets``);
3. the canonical URL, downloaded into the download folder with a progress bar,
   unless ``REPROLIB_OFFLINE=1`` or ``download=False``.

Both are verified by content, which holds for the canonical download and for re-compressed or
re-pickled mirrors alike: MNIST by the md5 of each file's decompressed bytes, CIFAR-10 by the md5
of each batch's pixel bytes and of its labels as uint8 (a download is also checked by the md5 of
the file itself). A CIFAR-10 batch is read by an unpickler that admits only numpy arrays, lists
and bytes, so nothing a data file holds can run. A file that is missing, unreadable or fails its
check raises :class:`DataFileError`; reprolib never deletes or overwrites a file it did not write.

Images come back as float32 tensors in [0, 1], NCHW, equal to ``uint8 / 255`` exactly.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import pickle
import struct
import tarfile
import tempfile
import urllib.request
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from . import paths

MNIST_CLASSES = tuple(str(d) for d in range(10))
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")

MNIST_URLS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
#: md5 of each MNIST file's decompressed bytes (its content, whatever the compression).
MNIST_CONTENT_MD5 = {
    "train-images-idx3-ubyte.gz": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte.gz": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte.gz": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte.gz": "27ae3e4e09519cfbb04c329615203637",
}
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_TAR_MD5 = "c58f30108f718f92721af3b95e74349a"
#: md5 of ``d[b'data'].tobytes()`` and of ``np.array(d[b'labels'], np.uint8).tobytes()``.
CIFAR10_CONTENT_MD5 = {
    "data_batch_1": ("e089133f4b27fe2499933fb92fbbcc51", "30f55b79f7954f592721267e37ffcbcf"),
    "data_batch_2": ("1de5dd711a8f0bcacfb9a30601172ecc", "bdca50851f742064551c3fa947e975d6"),
    "data_batch_3": ("28797e8984ca472a21646d72d5b1660b", "23228d18cd9f4c032bb8cfa72996e3ef"),
    "data_batch_4": ("21ac5d7ad76f680cc37bf831afe4901e", "61be7314d261d42101f429408af67a28"),
    "data_batch_5": ("5b7262fae1c886554070552d6ce4fa79", "8ca6bc10f4bd0e81fba552f724423842"),
    "test_batch": ("f1aa22116df97725db0e47461c45a82b", "251f18ce75337ae9ca5d0dbd7ea62cf4"),
}

_FIX = (
    "Point REPROLIB_DATA_MIRROR at a folder with the canonical files (torchvision layout), "
    "or let reprolib download them into REPROLIB_DATA_DIR (unset REPROLIB_OFFLINE)."
)


class DataFileError(RuntimeError):
    """A dataset file is missing, unreadable or fails its checksum."""


@dataclass(frozen=True)
class ImageSet:
    """Images ``x`` (float32, NCHW, in [0, 1]), labels ``y`` (int64) and their dataset indices."""

    name: str
    x: torch.Tensor
    y: torch.Tensor
    indices: torch.Tensor
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, positions: Sequence[int] | torch.Tensor) -> "ImageSet":
        """The images at ``positions`` of this set (not dataset indices), in that order."""
        pos = torch.as_tensor(positions, dtype=torch.long)
        return ImageSet(self.name, self.x[pos], self.y[pos], self.indices[pos], self.classes)

    def to(self, device: str | torch.device) -> "ImageSet":
        """The same images and labels on ``device`` (a new ``ImageSet``; this one is unchanged)."""
        return ImageSet(self.name, self.x.to(device), self.y.to(device), self.indices, self.classes)


def md5sum(path: Path, chunk: int = 1 << 20) -> str:
    """The md5 of a file's bytes; :class:`DataFileError` if it cannot be read."""
    h = hashlib.md5()
    try:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(chunk), b""):
                h.update(block)
    except OSError as exc:
        raise DataFileError(f"Cannot read {path}: {exc}. Check its permissions. {_FIX}") from exc
    return h.hexdigest()


def _offline() -> bool:
    return os.environ.get("REPROLIB_OFFLINE", "") not in ("", "0")


def _candidates(relative: str) -> list[Path]:
    places = []
    mirror = paths.data_mirror()
    if mirror is not None:
        places.append(mirror / relative)
    places.append(paths.data_dir() / relative)
    return places


def _download(url: str, dest: Path, md5: str) -> None:
    """Download ``url`` to ``dest`` atomically, checking its md5 before it lands."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=dest.name + ".", suffix=".part")
    try:
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as resp:
                total = int(resp.headers.get("Content-Length") or 0) or None
                with tqdm(total=total, unit="B", unit_scale=True, desc=f"download {dest.name}") as bar:
                    for block in iter(lambda: resp.read(1 << 16), b""):
                        out.write(block)
                        bar.update(len(block))
        except OSError as exc:  # no network, DNS failure, refused, timed out (urllib's errors are OSErrors)
            raise DataFileError(f"Could not download {url}: {exc}. {_FIX}") from exc
        actual = md5sum(Path(tmp))
        if actual != md5:
            raise DataFileError(
                f"Downloaded {url} has md5 {actual}, expected {md5}. The download was discarded; "
                "try again, or use a mirror (REPROLIB_DATA_MIRROR)."
            )
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _mnist_file(name: str, download: bool) -> Path:
    relative = f"MNIST/raw/{name}"
    expected = MNIST_MD5[name]
    places = _candidates(relative)
    for path in places:
        if path.is_file():
            return path
    if not download or _offline():
        raise DataFileError(
            f"MNIST file {name} not found. Looked in: {', '.join(map(str, places))}. "
            f"Downloads are off. {_FIX}"
        )
    dest = paths.data_dir() / relative
    errors = []
    for base in MNIST_URLS:
        try:
            _download(base + name, dest, expected)
            return dest
        except (OSError, DataFileError) as exc:  # try the next canonical URL
            errors.append(f"{base}{name}: {exc}")
    raise DataFileError(f"Could not download MNIST file {name}: " + "; ".join(errors) + f". {_FIX}")


def _read_idx(path: Path, expected_dims: int) -> np.ndarray:
    """Parse a gzipped IDX file of unsigned bytes (LeCun's format), checked by content."""
    try:
        with gzip.open(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError) as exc:
        raise DataFileError(f"Cannot read IDX file {path}: {exc}. {_FIX}") from exc
    expected = MNIST_CONTENT_MD5.get(path.name)
    actual = hashlib.md5(raw).hexdigest()
    if expected is not None and actual != expected:
        raise DataFileError(
            f"MNIST file {path} is corrupt: the md5 of its content is {actual}, expected {expected}. "
            f"reprolib will not overwrite it. Move it away and run again, or replace it with the "
            f"canonical file. {_FIX}"
        )
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08 or raw[3] != expected_dims:
        raise DataFileError(
            f"{path} is not an IDX file of {expected_dims}-d unsigned bytes "
            f"(magic {raw[:4].hex() or 'missing'}, expected 000008{expected_dims:02x}). {_FIX}"
        )
    header = 4 + 4 * expected_dims
    if len(raw) < header:
        raise DataFileError(f"{path} is truncated: its header declares shape but holds only {len(raw)} bytes. {_FIX}")
    dims = struct.unpack(f">{expected_dims}I", raw[4:header])
    count = int(np.prod(dims))
    if len(raw) - header != count:
        raise DataFileError(
            f"{path} declares shape {dims} ({count} bytes) but holds {len(raw) - header} bytes. {_FIX}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


@lru_cache(maxsize=4)
def _mnist_arrays(split: str, download: bool) -> tuple[np.ndarray, np.ndarray]:
    prefix = "train" if split == "train" else "t10k"
    images = _read_idx(_mnist_file(f"{prefix}-images-idx3-ubyte.gz", download), 3)
    labels = _read_idx(_mnist_file(f"{prefix}-labels-idx1-ubyte.gz", download), 1)
    if len(images) != len(labels):
        raise DataFileError(f"MNIST {split}: {len(images)} images but {len(labels)} labels. {_FIX}")
    return images[:, None, :, :], labels


def _cifar_dir(download: bool) -> Path:
    places = _candidates("cifar-10-batches-py")
    for path in places:
        if path.is_dir():
            return path
    if not download or _offline():
        raise DataFileError(
            f"CIFAR-10 folder cifar-10-batches-py not found. Looked in: {', '.join(map(str, places))}. "
            f"Downloads are off. {_FIX}"
        )
    root = paths.data_dir()
    tar = root / "cifar-10-python.tar.gz"
    if tar.is_file():
        actual = md5sum(tar)
        if actual != CIFAR10_TAR_MD5:
            raise DataFileError(
                f"{tar} is corrupt: md5 {actual}, expected {CIFAR10_TAR_MD5}. reprolib will not "
                f"overwrite it. Move it away and run again. {_FIX}"
            )
    else:
        _download(CIFAR10_URL, tar, CIFAR10_TAR_MD5)
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        with tarfile.open(tar, "r:gz") as archive:
            archive.extractall(tmp, filter="data")
        os.replace(Path(tmp) / "cifar-10-batches-py", root / "cifar-10-batches-py")
    return root / "cifar-10-batches-py"


class _BatchUnpickler(pickle.Unpickler):
    """Reads a CIFAR-10 batch and nothing else: the format needs dicts, lists, bytes, numbers and
    numpy arrays, so every other global a pickle names is refused before it can run."""

    ALLOWED = {("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "_reconstruct"),
               ("numpy._core.multiarray", "_reconstruct")}

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refused to load {module}.{name}: a CIFAR-10 batch holds only "
                                         "numpy arrays, lists and bytes")
        return super().find_class(module, name)


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    if not path.is_file():
        raise DataFileError(f"CIFAR-10 batch {path} is missing. {_FIX}")
    try:
        with open(path, "rb") as fh:
            batch = _BatchUnpickler(fh, encoding="bytes").load()
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[b"labels"], dtype=np.uint8)
    except Exception as exc:  # a truncated, foreign or unreadable file raises many kinds of error
        raise DataFileError(f"Cannot read CIFAR-10 batch {path}: {exc!r}. {_FIX}") from exc
    want_data, want_labels = CIFAR10_CONTENT_MD5[path.name]
    got_data = hashlib.md5(data.tobytes()).hexdigest()
    got_labels = hashlib.md5(labels.tobytes()).hexdigest()
    if (got_data, got_labels) != (want_data, want_labels):
        raise DataFileError(
            f"CIFAR-10 batch {path} fails its content check: pixel md5 {got_data} "
            f"(expected {want_data}), label md5 {got_labels} (expected {want_labels}). "
            f"reprolib will not overwrite it. Replace the folder with the canonical batches. {_FIX}"
        )
    return data.reshape(-1, 3, 32, 32), labels


@lru_cache(maxsize=4)
def _cifar_arrays(split: str, download: bool) -> tuple[np.ndarray, np.ndarray]:
    folder = _cifar_dir(download)
    names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    parts = [_read_cifar_batch(folder / name) for name in names]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _mnist32_arrays(split: str, download: bool) -> tuple[np.ndarray, np.ndarray]:
    """MNIST zero-padded by 2 pixels on each side to 32×32: the input of document 001's released
    FCNN and LeNet-5 (Balda et al., ``github.com/ebalda/adversarialconvex``)."""
    images, labels = _mnist_arrays(split, download)
    return np.pad(images, ((0, 0), (0, 0), (2, 2), (2, 2))), labels


DATASETS = {"mnist": (_mnist_arrays, MNIST_CLASSES), "mnist32": (_mnist32_arrays, MNIST_CLASSES),
            "cifar10": (_cifar_arrays, CIFAR10_CLASSES)}


def load(name: str, split: str = "test", *, download: bool = True) -> ImageSet:
    """Load a whole split of ``"mnist"``, ``"mnist32"`` or ``"cifar10"`` as float32 in [0, 1].

    ``"mnist32"`` is MNIST zero-padded by 2 pixels on each side (N × 1 × 32 × 32), the input of
    document 001's released nets; its images and labels are MNIST's, in the same order.

    >>> test = load("mnist")            # 10000 x 1 x 28 x 28
    >>> train = load("cifar10", "train")  # 50000 x 3 x 32 x 32
    """
    if name not in DATASETS:
        raise ValueError(f"Unknown dataset {name!r}; choose one of {sorted(DATASETS)}.")
    if split not in ("train", "test"):
        raise ValueError(f"Unknown split {split!r}; choose 'train' or 'test'.")
    reader, classes = DATASETS[name]
    images, labels = reader(split, download)
    x = torch.from_numpy(images.astype(np.float32) / np.float32(255.0))
    y = torch.from_numpy(labels.astype(np.int64))
    return ImageSet(name, x, y, torch.arange(len(y)), classes)


def first_n(data: ImageSet, n: int) -> ImageSet:
    """The first ``n`` images, in dataset order."""
    if not 0 < n <= len(data):
        raise ValueError(f"n={n} must be between 1 and the set's size {len(data)}.")
    return data.subset(torch.arange(n))


def class_balanced(data: ImageSet, per_class: int, seed: int | None = None) -> ImageSet:
    """``per_class`` images of every class: the first ones in dataset order, or in a seeded
    random order when ``seed`` is given. Classes are interleaved 0, 1, …, 9, 0, 1, …"""
    order = torch.arange(len(data))
    if seed is not None:
        order = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))
    picks = []
    for c in range(len(data.classes)):
        members = order[data.y[order] == c][:per_class]
        if len(members) < per_class:
            raise ValueError(f"Class {c} has only {len(members)} images; asked for {per_class}.")
        picks.append(members)
    return data.subset(torch.stack(picks, dim=1).reshape(-1))


@torch.no_grad()
def first_correct(model: torch.nn.Module, data: ImageSet, n: int, batch_size: int = 500) -> ImageSet:
    """The first ``n`` images (in the set's order) that ``model`` classifies correctly."""
    device = next(model.parameters()).device
    keep: list[torch.Tensor] = []
    found = 0
    for start in range(0, len(data), batch_size):
        xb = data.x[start:start + batch_size].to(device)
        pred = model(xb).argmax(1).cpu()
        hits = torch.nonzero(pred == data.y[start:start + batch_size]).flatten() + start
        keep.append(hits)
        found += len(hits)
        if found >= n:
            break
    positions = torch.cat(keep)[:n]
    if len(positions) < n:
        raise ValueError(f"The model classifies only {len(positions)} of {len(data)} images correctly; asked for {n}.")
    return data.subset(positions)


def main() -> None:
    """``python -m reprolib.data``: fetch (or find) and verify every split of every dataset (``mnist32`` is MNIST padded)."""
    for name in DATASETS:
        for split in ("train", "test"):
            images = load(name, split)
            print(f"{name} {split}: {len(images)} images {tuple(images.x.shape[1:])}, checksums verified")


if __name__ == "__main__":
    main()
