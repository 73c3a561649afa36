"""Data loaders: every source gives the same uint8 NHWC images, and bad input is a DataError."""

import hashlib
import os
import pickle
import tarfile

import numpy as np
import pytest

from pixeljax.data import CIFAR10_CLASSES, load_dataset, load_sample, make_image_set
from pixeljax.errors import DataError

# From ../shared/data/cifar10/README.md: sha256 of x.tobytes() + y.tobytes() (uint8 labels).
TEST_SHA256 = "8193b3fbce55bec361cd1b8fd4880cb1649832dc4d6de6da1e7a21847a4843aa"
TRAIN_SHA256 = "f912919bdea371136f1aa4feed6beeca728015a5f08b1899a29c932a7e30be2b"


def content_sha256(images) -> str:
    return hashlib.sha256(images.x.tobytes() + images.y.astype(np.uint8).tobytes()).hexdigest()


def official_batch(x, y, label: str) -> bytes:
    """One batch pickled as in the official python-version release (numpy 1.x names)."""
    batch = {
        b"batch_label": label.encode(),
        b"labels": [int(v) for v in y],
        b"data": np.ascontiguousarray(x.transpose(0, 3, 1, 2).reshape(len(x), 3072)),  # CHW rows
        b"filenames": [f"image_{i:05d}.png".encode() for i in range(len(x))],
    }
    return pickle.dumps(batch, protocol=2).replace(b"numpy._core.multiarray",
                                                   b"numpy.core.multiarray")


def write_official(root, x_train, y_train, x_test, y_test):
    """Writes ``root/cifar-10-batches-py/`` with five training batches and the test batch."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for k, (xs, ys) in enumerate(zip(np.array_split(x_train, 5), np.array_split(y_train, 5)), 1):
        (folder / f"data_batch_{k}").write_bytes(
            official_batch(xs, ys, f"training batch {k} of 5"))
    (folder / "test_batch").write_bytes(official_batch(x_test, y_test, "testing batch 1 of 1"))
    meta = {b"num_cases_per_batch": len(x_test), b"num_vis": 3072,
            b"label_names": [c.encode() for c in CIFAR10_CLASSES]}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return folder


@pytest.fixture(scope="module")
def sample():
    return load_sample()


@pytest.fixture
def official(tmp_path, sample):
    """An official-format folder made of the shipped sample: 400 training and 100 test images."""
    write_official(tmp_path, sample.x[:400], sample.y[:400], sample.x[400:], sample.y[400:])
    return tmp_path


class Evil:
    """A pickle payload that would create ``path`` if it were ever unpickled freely."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return os.system, (f"touch {self.path}",)


# Real CIFAR-10 (../shared).

def test_shared_folder_test_split_is_the_real_cifar10_test_set(shared_cifar10):
    test = load_dataset(shared_cifar10, "test")
    assert test.x.shape == (10_000, 32, 32, 3) and test.x.dtype == np.uint8
    assert test.y.dtype == np.int32
    assert np.bincount(test.y).tolist() == [1000] * 10
    np.testing.assert_array_equal(test.index, np.arange(10_000))
    assert content_sha256(test) == TEST_SHA256


def test_shared_folder_train_split_joins_its_parts_in_order(shared_cifar10):
    train = load_dataset(shared_cifar10, "train")
    assert train.x.shape == (50_000, 32, 32, 3)
    assert content_sha256(train) == TRAIN_SHA256


def test_single_npz_file_loads_like_the_folder(shared_cifar10):
    single = load_dataset(shared_cifar10 / "test.npz", split="train")  # split is ignored
    assert len(single) == 10_000
    assert content_sha256(single) == TEST_SHA256


def test_shipped_sample_holds_real_test_images_at_their_index(shared_cifar10, sample):
    assert len(sample) == 500
    assert len(np.unique(sample.index)) == 500
    with np.load(shared_cifar10 / "test.npz") as f:
        x, y = f["x"], f["y"]
    np.testing.assert_array_equal(sample.x, x[sample.index])
    np.testing.assert_array_equal(sample.y, y[sample.index].astype(np.int32))


# The shipped sample and the official release format (no ../shared needed).

def test_sample_is_the_default_source(sample):
    loaded = load_dataset()
    assert len(loaded) == 500 and loaded.x.dtype == np.uint8 and loaded.y.dtype == np.int32
    np.testing.assert_array_equal(loaded.x, sample.x)
    np.testing.assert_array_equal(loaded.index, load_dataset("sample").index)


def test_sample_has_no_training_split():
    with pytest.raises(DataError, match="test images only"):
        load_dataset("sample", "train")


@pytest.mark.parametrize("point_at", ["parent", "batches"])
def test_official_folder_round_trips_the_pixels(official, sample, point_at):
    folder = official if point_at == "parent" else official / "cifar-10-batches-py"
    train, test = load_dataset(folder, "train"), load_dataset(folder, "test")
    np.testing.assert_array_equal(train.x, sample.x[:400])
    np.testing.assert_array_equal(train.y, sample.y[:400])
    np.testing.assert_array_equal(test.x, sample.x[400:])
    np.testing.assert_array_equal(test.y, sample.y[400:])
    assert train.x.dtype == np.uint8 and train.y.dtype == np.int32
    assert train.x.flags.c_contiguous


def test_official_tarball_round_trips_the_pixels(official, sample, tmp_path):
    tarball = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(official / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    test = load_dataset(tarball, "test")
    train = load_dataset(str(tarball), "train")
    np.testing.assert_array_equal(test.x, sample.x[400:])
    np.testing.assert_array_equal(test.y, sample.y[400:])
    np.testing.assert_array_equal(train.x, sample.x[:400])


def test_npz_file_round_trips_the_pixels(tmp_path, sample):
    path = tmp_path / "mine.npz"
    np.savez(path, x=sample.x[:7], y=sample.y[:7].astype(np.int64))
    loaded = load_dataset(path)
    np.testing.assert_array_equal(loaded.x, sample.x[:7])
    np.testing.assert_array_equal(loaded.y, sample.y[:7])
    np.testing.assert_array_equal(loaded.index, np.arange(7))


def test_npz_folder_joins_numbered_parts_in_numeric_order(tmp_path, sample):
    for k, part in enumerate(np.array_split(np.arange(30), 11)):
        np.savez(tmp_path / f"train-{k}.npz", x=sample.x[part], y=sample.y[part])
    np.savez(tmp_path / "test.npz", x=sample.x[:3], y=sample.y[:3])
    np.testing.assert_array_equal(load_dataset(tmp_path, "train").x, sample.x[:30])
    assert len(load_dataset(tmp_path, "test")) == 3


# Malicious or malformed files.

def test_malicious_official_pickle_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    (folder / "test_batch").write_bytes(
        pickle.dumps({b"data": Evil(marker), b"labels": [0]}, protocol=2))
    with pytest.raises(DataError, match="test_batch: not a CIFAR-10 python-version batch"):
        load_dataset(tmp_path, "test")
    assert not marker.exists()


def test_malicious_pickle_inside_a_tarball_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "test_batch"
    evil.write_bytes(pickle.dumps(Evil(marker), protocol=4))
    tarball = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(evil, arcname="cifar-10-batches-py/test_batch")
    with pytest.raises(DataError, match="forbidden"):
        load_dataset(tarball, "test")
    assert not marker.exists()


@pytest.mark.parametrize("payload", ["evil", "plain"])
def test_npz_with_object_arrays_is_refused(tmp_path, payload):
    marker = tmp_path / "pwned"
    x = np.array([Evil(marker)] if payload == "evil" else [1, "two"], dtype=object)
    path = tmp_path / "objects.npz"
    np.savez(path, x=x, y=np.zeros(1, np.uint8))
    with pytest.raises(DataError, match="allow_pickle"):
        load_dataset(path)
    assert not marker.exists()


def npz(tmp_path, **arrays):
    path = tmp_path / "data.npz"
    np.savez(path, **arrays)
    return path


GOOD_X = np.zeros((4, 32, 32, 3), np.uint8)
GOOD_Y = np.arange(4)


@pytest.mark.parametrize("arrays, message", [
    (dict(x=np.zeros((4, 32, 32), np.uint8), y=GOOD_Y), "must be NHWC"),
    (dict(x=np.zeros((4, 32, 32, 2), np.uint8), y=GOOD_Y), r"got shape \(4, 32, 32, 2\)"),
    (dict(x=GOOD_X.astype(np.float32), y=GOOD_Y), "must be uint8.*float32"),
    (dict(x=GOOD_X, y=GOOD_Y[:3]), r"labels must have shape \(4,\), got \(3,\)"),
    (dict(x=GOOD_X, y=GOOD_Y[:, None]), "labels must have shape"),
    (dict(x=GOOD_X, y=GOOD_Y.astype(np.float32)), "labels must be integers"),
    (dict(x=GOOD_X, y=np.array([0, -1, 2, 3])), r"must lie in \[0, 9\].*from -1"),
    (dict(x=GOOD_X), r"missing array\(s\) \['y'\]"),
    (dict(images=GOOD_X, labels=GOOD_Y), r"missing array\(s\) \['x', 'y'\]"),
])
def test_malformed_npz_arrays_are_named_in_the_error(tmp_path, arrays, message):
    with pytest.raises(DataError, match=message):
        load_dataset(npz(tmp_path, **arrays))


def test_index_must_match_the_labels():
    with pytest.raises(DataError, match="'index' must hold 4 integers"):
        make_image_set(GOOD_X, GOOD_Y, source="mine", index=np.arange(3))


def test_garbage_npz_file_is_a_data_error(tmp_path):
    path = tmp_path / "broken.npz"
    path.write_bytes(b"not a zip archive at all")
    with pytest.raises(DataError, match="not a readable .npz file"):
        load_dataset(path)


def test_nonexistent_path_is_a_data_error_listing_the_sources(tmp_path):
    with pytest.raises(DataError, match="does not exist; expected 'sample', 'tfds"):
        load_dataset(tmp_path / "nowhere")


@pytest.mark.parametrize("split", ["val", "Test", ""])
def test_unknown_split_is_a_data_error(split):
    with pytest.raises(DataError, match=f"unknown split '{split}'; expected one of train, test"):
        load_dataset("sample", split)


def test_unknown_file_type_is_a_data_error(tmp_path):
    path = tmp_path / "images.csv"
    path.write_text("1,2,3\n")
    with pytest.raises(DataError, match="unknown file type"):
        load_dataset(path)


def test_folder_without_data_is_a_data_error(tmp_path):
    (tmp_path / "readme.txt").write_text("nothing here")
    with pytest.raises(DataError, match="no data for split 'test'"):
        load_dataset(tmp_path, "test")


def test_official_folder_missing_a_batch_is_a_data_error(official):
    (official / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(DataError, match="missing data_batch_3"):
        load_dataset(official, "train")
    assert len(load_dataset(official, "test")) == 100


def test_official_batch_of_wrong_shape_is_a_data_error(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    batch = {b"data": np.zeros((2, 1024), np.uint8), b"labels": [0, 1]}
    (folder / "test_batch").write_bytes(pickle.dumps(batch, protocol=2))
    with pytest.raises(DataError, match=r"'data' must be uint8 \(N, 3072\)"):
        load_dataset(tmp_path, "test")


def test_official_batch_without_labels_is_a_data_error(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    batch = {b"data": np.zeros((2, 3072), np.uint8), b"fine_labels": [0, 1]}
    (folder / "test_batch").write_bytes(pickle.dumps(batch, protocol=2))
    with pytest.raises(DataError, match="missing 'data' or 'labels'"):
        load_dataset(tmp_path, "test")


def test_truncated_tarball_is_a_data_error(official, tmp_path):
    tarball = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(official / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    tarball.write_bytes(tarball.read_bytes()[:2000])
    with pytest.raises(DataError, match="cifar-10-python.tar.gz"):
        load_dataset(tarball, "test")


def test_tarball_without_the_batches_is_a_data_error(tmp_path):
    other = tmp_path / "other.txt"
    other.write_text("hello")
    tarball = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(other, arcname="other.txt")
    with pytest.raises(DataError, match="no test_batch inside"):
        load_dataset(tarball, "test")


# tensorflow-datasets: only the offline failure is tested (no network here).

def test_tfds_with_a_missing_dir_fails_fast_without_downloading(tmp_path):
    with pytest.raises(DataError, match="tfds data dir .* does not exist"):
        load_dataset(f"tfds:{tmp_path / 'nonexistent-dir'}")
    assert not (tmp_path / "nonexistent-dir").exists()


def test_tfds_with_an_unprepared_dir_fails_without_downloading(tmp_path):
    pytest.importorskip("tensorflow_datasets")
    with pytest.raises(DataError, match="cifar10 is not prepared in .*tfds build cifar10"):
        load_dataset(f"tfds:{tmp_path}")
    assert not list(tmp_path.rglob("*.tar.gz"))


@pytest.mark.parametrize("labels, message", [
    ([b"cat", b"dog"], "'labels' must be a list of integers"),
    ([0, 1, 2], r"one integer per image \(2\), got shape \(3,\)"),
])
def test_official_batch_with_bad_labels_is_a_data_error(tmp_path, labels, message):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    batch = {b"data": np.zeros((2, 3072), np.uint8), b"labels": labels}
    (folder / "test_batch").write_bytes(pickle.dumps(batch, protocol=2))
    with pytest.raises(DataError, match=message):
        load_dataset(tmp_path, "test")


def test_labels_beyond_nine_make_a_data_set_of_that_many_classes(tmp_path):
    data = load_dataset(npz(tmp_path, x=GOOD_X, y=np.array([0, 1, 2, 10])))
    assert data.num_classes == 11 and data.class_names[10] == "class 10"
    named = tmp_path / "named.npz"
    np.savez(named, x=GOOD_X, y=np.array([0, 1, 1, 0]), class_names=np.array(["no", "yes"]))
    assert load_dataset(named).class_names == ("no", "yes")


def _png_classes(root, classes, per_class=2):
    from PIL import Image

    rng = np.random.default_rng(0)
    for name in classes:
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")


def test_hidden_and_archiver_folders_are_no_classes_and_shift_no_label(tmp_path, capsys):
    _png_classes(tmp_path / "data", ["cat", "dog"])
    (tmp_path / "data" / "__MACOSX").mkdir()  # left empty by a macOS zip, sorts first
    (tmp_path / "data" / ".cache").mkdir()
    data = load_dataset(tmp_path / "data", "test")
    assert data.class_names == ("cat", "dog") and list(data.y) == [0, 0, 1, 1]
    assert "skipped .cache, __MACOSX (hidden or system folders" in capsys.readouterr().err


def test_an_empty_class_folder_is_one_error_line_naming_it(tmp_path, capsys):
    from pixeljax.cli import main

    _png_classes(tmp_path / "data", ["cat", "dog"])
    (tmp_path / "data" / "aardvark").mkdir()  # empty, sorts first: every label would shift
    assert main(["accuracy", "allconv", "--data", str(tmp_path / "data")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")
    assert "empty class folder(s) 'aardvark'" in err[0] and "shift" in err[0]
