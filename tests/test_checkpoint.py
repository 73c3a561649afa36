"""Victim checkpoints: export and load round trip, metadata, and clear errors for bad folders."""

import gc
import json
import re
import shutil
import sys

import jax
import numpy as np
import pytest
from flax import nnx

from pixeljax.data import load_sample
from pixeljax.errors import CheckpointError, PixeljaxError
from pixeljax.models import create_model, parameter_count, split_for_inference
from pixeljax.training import export_victim
from pixeljax.victims.accuracy import accuracy
from pixeljax.victims.checkpoint import load_victim, read_metadata, save_victim


@pytest.fixture(scope="module")
def sample():
    return load_sample()


@pytest.fixture(scope="module")
def exported(tmp_path_factory, sample):
    """``(folder, model, metadata)`` of an exported tiny victim with non-trivial BN statistics."""
    model = create_model("tiny", seed=3)
    model.train()
    model(sample.x[:64])  # batch-norm statistics that differ from their initial values
    model.eval()
    folder = tmp_path_factory.mktemp("export") / "tiny"
    meta = export_victim(model, folder, architecture="tiny", test_set=sample.take(range(50)),
                         training={"epochs": 0, "note": "test"})
    return folder, model, meta


@pytest.fixture
def copy(exported, tmp_path):
    """A fresh copy of the exported victim, to damage."""
    return shutil.copytree(exported[0], tmp_path / "tiny")


def without_digests(folder):
    """Makes ``folder`` a checkpoint of a version that recorded no weight digests."""
    meta = json.loads((folder / "metadata.json").read_text())
    del meta["weight_sha256"]
    (folder / "metadata.json").write_text(json.dumps(meta))
    return folder


def test_export_then_load_gives_identical_logits(exported, sample):
    folder, model, _ = exported
    victim = load_victim("tiny", folder)
    apply, params = split_for_inference(model)
    np.testing.assert_array_equal(np.asarray(victim.apply(victim.params, sample.x[:32])),
                                  np.asarray(apply(params, sample.x[:32])))
    np.testing.assert_allclose(np.asarray(jax.jit(victim.predict)(sample.x[:8])),
                               np.asarray(apply(params, sample.x[:8])), rtol=1e-5, atol=1e-6)
    original, loaded = jax.tree.leaves(nnx.state(model)), jax.tree.leaves(victim.params)
    assert len(original) == len(loaded)
    assert all(np.array_equal(a, b) for a, b in zip(original, loaded))


def test_export_writes_the_metadata_it_returns(exported, sample):
    folder, model, meta = exported
    assert json.loads((folder / "metadata.json").read_text()) == meta
    assert read_metadata(folder) == meta == load_victim("tiny", folder).metadata
    assert meta["architecture"] == "tiny" and meta["num_classes"] == 10
    assert meta["parameter_count"] == parameter_count(model) == 14_746
    apply, params = split_for_inference(model)
    assert meta["test_images"] == 50 and meta["sample_images"] == 500
    assert meta["test_accuracy"] == accuracy(apply, params, sample.x[:50], sample.y[:50])
    assert meta["sample_accuracy"] == accuracy(apply, params, sample.x, sample.y)
    assert meta["note"] == "test" and meta["epochs"] == 0


def test_exporting_again_replaces_the_folder(exported, tmp_path):
    folder = tmp_path / "victim"
    save_victim(folder, create_model("tiny", seed=1), {"architecture": "tiny"})
    save_victim(folder, exported[1], {"architecture": "tiny", "version": 2})
    assert read_metadata(folder)["version"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["victim"]
    loaded = jax.tree.leaves(load_victim("tiny", folder).params)
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(nnx.state(exported[1])),
                                                    loaded))


def test_weights_are_split_into_data_files_of_about_the_target_size(tmp_path, monkeypatch):
    monkeypatch.setattr("pixeljax.victims.checkpoint.DATA_FILE_BYTES", 256 << 10)
    model = create_model("allconv", seed=0)  # 5.5 MB of float32 weights
    save_victim(tmp_path / "allconv", model, {"architecture": "allconv"})
    largest = max(x.nbytes for x in jax.tree.leaves(nnx.state(model, nnx.Param)))
    weights = tmp_path / "allconv" / "weights"
    data = [p.stat().st_size for p in weights.rglob("ocdbt.process_*/d/*")]
    assert len(data) > 5 and max(data) <= (256 << 10) + largest, data
    loaded = load_victim("allconv", tmp_path / "allconv").params
    for a, b in zip(jax.tree.leaves(loaded), jax.tree.leaves(split_for_inference(model)[1])):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_missing_checkpoint_folder_is_a_checkpoint_error(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_victim("tiny", tmp_path / "nowhere")


def test_missing_shipped_checkpoint_says_how_to_make_one():
    with pytest.raises(CheckpointError, match="no shipped checkpoint for 'tiny'.*pixeljax train"):
        load_victim("tiny")


def test_unknown_model_name_is_reported_before_the_checkpoint(exported):
    with pytest.raises(PixeljaxError, match="unknown model 'nope'"):
        load_victim("nope", exported[0])


def test_folder_without_metadata_is_a_checkpoint_error(copy):
    (copy / "metadata.json").unlink()
    with pytest.raises(CheckpointError, match="not a pixeljax checkpoint: no metadata.json"):
        load_victim("tiny", copy)


@pytest.mark.parametrize("content", [b'{"architecture": "tiny",', b"\xff\xfe\x00garbage"])
def test_corrupt_metadata_is_a_checkpoint_error(copy, content):
    (copy / "metadata.json").write_bytes(content)
    with pytest.raises(CheckpointError, match="metadata.json: corrupt metadata"):
        load_victim("tiny", copy)


@pytest.mark.parametrize("meta", [{"parameter_count": 1}, ["tiny"]])
def test_metadata_without_architecture_is_a_checkpoint_error(copy, meta):
    (copy / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="no 'architecture' field"):
        load_victim("tiny", copy)


@pytest.mark.parametrize("num_classes", ["10", 0, 2.5])
def test_bad_num_classes_in_metadata_is_a_checkpoint_error(copy, num_classes):
    meta = json.loads((copy / "metadata.json").read_text())
    (copy / "metadata.json").write_text(json.dumps({**meta, "num_classes": num_classes}))
    with pytest.raises(CheckpointError, match="num_classes must be a positive integer"):
        load_victim("tiny", copy)


def test_checkpoint_of_another_architecture_is_refused(exported):
    with pytest.raises(CheckpointError, match="holds a 'tiny' network, not 'allconv'"):
        load_victim("allconv", exported[0])


def test_weights_of_another_architecture_are_refused_by_their_names(copy):
    meta = json.loads((copy / "metadata.json").read_text())
    (copy / "metadata.json").write_text(json.dumps({**meta, "architecture": "nin"}))
    with pytest.raises(CheckpointError, match="do not fit a 'nin' network.*missing layers"):
        load_victim("nin", copy)


def test_weights_of_the_wrong_shape_are_a_checkpoint_error(tmp_path, capfd):
    folder = tmp_path / "five"
    save_victim(folder, create_model("tiny", num_classes=5), {"architecture": "tiny"})
    with pytest.raises(CheckpointError,
                       match=r"weight layers.3.conv.bias has shape \(5,\), expected \(10,\)"):
        load_victim("tiny", folder)
    assert "Traceback" not in capfd.readouterr().err


def test_deleted_weights_are_a_checkpoint_error(copy):
    shutil.rmtree(copy / "weights")
    with pytest.raises(CheckpointError, match="has no weights/ folder"):
        load_victim("tiny", copy)


@pytest.mark.parametrize("digests", [True, False], ids=["digests", "no-digests"])
def test_deleted_orbax_metadata_is_one_clean_checkpoint_error(copy, digests, capfd):
    if not digests:
        without_digests(copy)
    for path in (copy / "weights").rglob("manifest.ocdbt"):
        path.unlink()
    expected = ("weight file weights/manifest.ocdbt is missing" if digests else
                "holds no readable weights \\(manifest.ocdbt is missing")
    with pytest.raises(CheckpointError, match=expected):
        load_victim("tiny", copy)
    err = capfd.readouterr().err
    assert "Traceback" not in err and "Event loop" not in err and "absl" not in err, err


# orbax's reader threads may also report "Event loop is closed" after the error; harmless.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("where", ["ocdbt.process_*/d", "**/d"])
@pytest.mark.parametrize("damage", ["garbage", "truncated", "deleted"])
@pytest.mark.parametrize("digests", [True, False], ids=["digests", "no-digests"])
def test_damaged_weight_files_are_a_checkpoint_error(copy, damage, where, digests, monkeypatch):
    if not digests:  # orbax itself must notice
        without_digests(copy)
    data = [p for p in (copy / "weights").glob(f"{where}/*") if p.is_file()]
    assert data, f"expected orbax data files in weights/{where}/"
    for path in data:
        if damage == "garbage":
            path.write_bytes(b"\x00garbage" * 64)
        elif damage == "truncated":
            path.write_bytes(path.read_bytes()[:len(path.read_bytes()) // 2])
        else:
            path.unlink()
    try:
        load_victim("tiny", copy)
    except CheckpointError as e:
        message = str(e)
    else:
        pytest.fail("a damaged checkpoint loaded")
    assert re.search(r"checkpoint .*tiny: .*damaged", message), message
    if digests:  # the digests name the file
        assert re.search(r"weight file weights/\S+ (is missing|is damaged \(its sha256)",
                         message), message
    # orbax leaves its failed reads behind; they complain when collected. Collect them quietly.
    monkeypatch.setattr(sys, "unraisablehook", lambda unraisable: None)
    gc.collect()
