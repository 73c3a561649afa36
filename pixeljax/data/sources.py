"""One ``--data`` argument for every source of CIFAR-10.

Accepted specs:
  * ``sample``: the few hundred real CIFAR-10 test images shipped inside the package;
  * ``tfds`` (downloads on first use) or ``tfds:DATA_DIR`` (offline, from a dir where cifar10 is
    already prepared): tensorflow-datasets;
  * a path to ``cifar-10-python.tar.gz`` or to the extracted ``cifar-10-batches-py/`` folder;
  * ``tfds:NAME[:SPLIT][@DATA_DIR]``: any image data set tensorflow-datasets has prepared
    (``cifar100``, ``svhn_cropped``, ...), with its class names;
  * a path to one ``.npz`` file (``x`` uint8 NHWC, ``y`` int, optionally ``class_names``);
  * a folder of ``.npz`` files laid out as ``test.npz``, ``train-0.npz``, ``train-1.npz``, ...;
  * a folder of class folders of PNG/JPEG images (``DIR/<class>/`` or ``DIR/<split>/<class>/``).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from pixeljax.data.arrays import ImageSet, make_image_set
from pixeljax.data.folders import image_root, load_image_folder
from pixeljax.data.npz import load_npz_file, load_npz_folder, read_npz, split_files
from pixeljax.data.official import is_official_folder, load_official_folder, load_official_tarball
from pixeljax.data.tfds import load_tfds
from pixeljax.data.tfds import parse as tfds_args
from pixeljax.errors import DataError

SPLITS = ("train", "test")
SAMPLE = "sample"
_SAMPLE_FILE = "cifar10_test_sample.npz"


def sample_path() -> Path:
    return Path(str(resources.files("pixeljax.data") / _SAMPLE_FILE))


def load_sample() -> ImageSet:
    """The shipped sample of real CIFAR-10 test images (``index`` = position in the test split)."""
    x, y, index = read_npz(sample_path())
    return make_image_set(x, y, index=index, source="shipped CIFAR-10 test sample")


def data_key(spec: str | None) -> str | None:
    """A data spec as results record it: paths made absolute, so that a rerun or an analysis
    from another folder finds the same data (``sample``, ``tfds`` specs and None as given)."""
    if spec is None or spec == SAMPLE or spec == "tfds" or spec.startswith("tfds:"):
        return spec
    return str(Path(spec).expanduser().resolve())


def load_dataset(spec: str | Path | None = SAMPLE, split: str = "test") -> ImageSet:
    """Loads CIFAR-10 images and labels from any supported source.

    Args:
      spec: where the data lives (see the module docstring); ``None`` means the shipped sample.
      split: ``"train"`` or ``"test"`` (ignored for a single ``.npz`` file).

    Returns:
      An :class:`ImageSet` with uint8 NHWC images and int32 labels.

    Raises:
      DataError: the spec names nothing readable, or the arrays are malformed.
    """
    spec = SAMPLE if spec is None else str(spec)
    if split not in SPLITS and not spec.startswith("tfds:"):
        raise DataError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    if spec == SAMPLE:
        if split != "test":
            raise DataError("the shipped sample holds test images only; use --split test")
        return load_sample()
    if spec == "tfds" or spec.startswith("tfds:"):
        return load_tfds(**tfds_args(None if spec == "tfds" else spec[5:], split))
    path = Path(spec).expanduser()
    if not path.exists():
        raise DataError(f"data path {path} does not exist; expected 'sample', 'tfds[:DIR]', "
                        f"a .npz file, a folder of .npz files, or the official CIFAR-10 "
                        f"python-version tarball or folder")
    if path.is_file():
        if path.name.endswith((".tar.gz", ".tgz", ".tar")):
            return load_official_tarball(path, split)
        if path.suffix == ".npz":
            return load_npz_file(path)
        raise DataError(f"{path}: unknown file type; expected .npz or cifar-10-python.tar.gz")
    if is_official_folder(path):
        return load_official_folder(path, split)
    if split_files(path, split):
        return load_npz_folder(path, split)
    if image_root(path, split) is not None:
        return load_image_folder(path, split)
    raise DataError(f"{path}: no data for split {split!r} (expected {split}.npz, "
                    f"{split}-<k>.npz, the official cifar-10-batches-py files or class folders "
                    f"of images)")
