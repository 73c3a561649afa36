"""The shipped AllConv victim (``checkpoints/allconv``): it loads and is the network it says."""

import pytest

from pixeljax.accuracy import accuracy
from pixeljax.checkpoint import load_victim, shipped_checkpoint
from pixeljax.data import load_sample
from pixeljax.models import parameter_count

ALLCONV_PARAMETERS = 1_370_986  # see test_models.py


@pytest.fixture(scope="module")
def victim():
    folder = shipped_checkpoint("allconv")
    if not (folder / "metadata.json").is_file():
        pytest.fail(f"the shipped AllConv victim is missing: expected {folder}/ (train and "
                    f"export it with 'pixeljax train allconv ... --export {folder}')")
    return load_victim("allconv")


def test_shipped_allconv_is_the_architecture_it_claims(victim):
    meta = victim.metadata
    assert meta["architecture"] == "allconv" and meta.get("num_classes", 10) == 10
    assert meta["parameter_count"] == parameter_count(victim.model) == ALLCONV_PARAMETERS


def test_shipped_allconv_reproduces_its_recorded_sample_accuracy(victim):
    sample = load_sample()
    measured = accuracy(victim.apply, victim.params, sample.x, sample.y)
    assert victim.metadata["sample_images"] == len(sample) == 500
    assert abs(measured - victim.metadata["sample_accuracy"]) <= 1 / 500 + 1e-9
    assert measured > 0.5  # a trained network, far above the 10% of chance


def test_shipped_allconv_records_a_trained_test_accuracy(victim):
    meta = victim.metadata
    assert meta["test_images"] > 0
    assert 0.5 < meta["test_accuracy"] <= 1.0
