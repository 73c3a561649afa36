"""The official CIFAR-10 python-version release (``cifar-10-python.tar.gz`` or its
extracted ``cifar-10-batches-py/`` folder).

The batch files are pickles. They are read with a restricted unpickler that admits only the
NumPy array reconstruction the files contain, so a crafted file raises an error instead of
running code.
"""

from __future__ import annotations

import io
import pickle
import tarfile
import warnings
from pathlib import Path

import numpy as np

from pixeljax.data.arrays import ImageSet, make_image_set
from pixeljax.errors import DataError

TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCHES = ("test_batch",)
FOLDER = "cifar-10-batches-py"

_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("_codecs", "encode"),
}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"forbidden object {module}.{name}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return super().find_class(module, name)


def _unpickle_batch(data: bytes, name: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        batch = _RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()
    except Exception as e:  # any malformed or malicious pickle
        raise DataError(f"{name}: not a CIFAR-10 python-version batch ({e})") from None
    if not isinstance(batch, dict):
        raise DataError(f"{name}: expected a dict of arrays, got {type(batch).__name__}")
    batch = {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}
    if "data" not in batch or "labels" not in batch:
        raise DataError(f"{name}: missing 'data' or 'labels' (keys: {sorted(batch)})")
    data = np.asarray(batch["data"])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DataError(f"{name}: 'data' must be uint8 (N, 3072), got {data.dtype} {data.shape}")
    try:
        labels = np.asarray(batch["labels"], np.int64)
    except (TypeError, ValueError, OverflowError) as e:
        raise DataError(f"{name}: 'labels' must be a list of integers ({e})") from None
    if labels.shape != (len(data),):
        raise DataError(f"{name}: 'labels' must hold one integer per image ({len(data)}), "
                        f"got shape {labels.shape}")
    x = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # CHW rows -> NHWC
    return np.ascontiguousarray(x), labels


def _batches(split: str) -> tuple[str, ...]:
    return TRAIN_BATCHES if split == "train" else TEST_BATCHES


def _assemble(parts, source: str) -> ImageSet:
    xs, ys = zip(*parts)
    return make_image_set(np.concatenate(xs), np.concatenate(ys), source=source)


def load_official_folder(folder: Path, split: str) -> ImageSet:
    """Reads ``cifar-10-batches-py/`` (or the folder that holds it)."""
    if (folder / FOLDER).is_dir():
        folder = folder / FOLDER
    parts = []
    for name in _batches(split):
        path = folder / name
        if not path.is_file():
            raise DataError(f"{folder}: missing {name}, expected the official CIFAR-10 batches")
        parts.append(_unpickle_batch(path.read_bytes(), str(path)))
    return _assemble(parts, f"{folder} ({split})")


def load_official_tarball(path: Path, split: str) -> ImageSet:
    """Reads ``cifar-10-python.tar.gz`` without extracting it."""
    try:
        with tarfile.open(path, "r:*") as tar:
            members = {Path(m.name).name: m for m in tar.getmembers() if m.isfile()}
            parts = []
            for name in _batches(split):
                if name not in members:
                    raise DataError(f"{path}: no {name} inside; expected the official "
                                    f"cifar-10-python.tar.gz")
                parts.append(_unpickle_batch(tar.extractfile(members[name]).read(),
                                             f"{path}:{name}"))
    except (tarfile.TarError, OSError, EOFError) as e:
        raise DataError(f"{path}: not a readable tar archive ({e})") from None
    return _assemble(parts, f"{path} ({split})")


def is_official_folder(folder: Path) -> bool:
    return (folder / FOLDER).is_dir() or (folder / "test_batch").is_file() or \
        (folder / "data_batch_1").is_file()
