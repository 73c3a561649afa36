"""The shipped victims (``checkpoints/NAME``): each loads, is the network it says, and is as
accurate on the shipped sample as its metadata records."""

import pytest

from pixeljax.data import load_sample
from pixeljax.models import parameter_count
from pixeljax.victims.accuracy import accuracy
from pixeljax.victims.checkpoint import load_victim, shipped_checkpoint

# Parameter counts from the papers' layer lists (see test_models.py and test_resnet.py).
SHIPPED = {"allconv": 1_370_986, "nin": 968_394, "vgg16": 19_990_474, "resnet20": 269_722,
           "allconv-adv1px": 1_370_986}
# Shipped victims named otherwise than their network.
ARCHITECTURE = {"allconv-adv1px": "allconv"}
# Accuracy on all 10,000 test images each shipped checkpoint must keep (the CPU schedules'
# thresholds: 80%, and 85% for ResNet-20).
TEST_ACCURACY_AT_LEAST = {"allconv": 0.80, "nin": 0.80, "vgg16": 0.80, "resnet20": 0.85,
                          "allconv-adv1px": 0.80}
# All shipped checkpoints together stay small: the repository travels whole to remote machines;
# and no single file is large (save_victim splits the weights into data files of about 8 MiB).
SHIPPED_MIB_AT_MOST = 50
FILE_MIB_AT_MOST = 16


@pytest.fixture(scope="module", params=sorted(SHIPPED))
def victim(request):
    name = request.param
    folder = shipped_checkpoint(name)
    if not (folder / "metadata.json").is_file():
        pytest.fail(f"the shipped {name} victim is missing: expected {folder}/ (train and "
                    f"export it with 'pixeljax train {name} ... --export {folder}')")
    return name, load_victim(ARCHITECTURE.get(name, name), folder)


def test_shipped_victim_is_the_architecture_it_claims(victim):
    name, v = victim
    meta = v.metadata
    assert meta["architecture"] == ARCHITECTURE.get(name, name)
    assert meta.get("num_classes", 10) == 10
    assert meta["parameter_count"] == parameter_count(v.model) == SHIPPED[name]


def test_shipped_victim_reproduces_its_recorded_sample_accuracy(victim):
    _, v = victim
    sample = load_sample()
    measured = accuracy(v.apply, v.params, sample.x, sample.y)
    assert v.metadata["sample_images"] == len(sample) == 500
    assert abs(measured - v.metadata["sample_accuracy"]) <= 1 / 500 + 1e-9
    assert measured > 0.5  # a trained network, far above the 10% of chance


def test_shipped_victim_records_its_accuracy_on_the_whole_test_set(victim):
    name, v = victim
    meta = v.metadata
    assert meta["test_images"] == 10_000
    assert TEST_ACCURACY_AT_LEAST[name] <= meta["test_accuracy"] <= 1.0


def test_the_one_pixel_fine_tuned_victim_records_how_it_was_trained():
    meta = load_victim("allconv", shipped_checkpoint("allconv-adv1px")).metadata
    assert meta["recipe"]["adversarial_fraction"] == 0.5 and meta["recipe"]["adversarial"] == "de"
    assert meta["initialised_from"]["checkpoint"] == "shipped:allconv"


def test_shipped_checkpoints_together_stay_under_the_size_limit():
    folders = [shipped_checkpoint(name) for name in SHIPPED]
    size = sum(f.stat().st_size for folder in folders for f in folder.rglob("*") if f.is_file())
    assert size <= SHIPPED_MIB_AT_MOST * 2**20, f"{size / 2**20:.1f} MiB"


def test_no_shipped_file_is_large():
    files = [f for name in SHIPPED for f in shipped_checkpoint(name).rglob("*") if f.is_file()]
    large = {str(f): f"{f.stat().st_size / 2**20:.1f} MiB" for f in files
             if f.stat().st_size > FILE_MIB_AT_MOST * 2**20}
    assert not large, large
