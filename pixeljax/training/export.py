"""Turning a training run into a shipped victim: weights plus metadata."""

from __future__ import annotations

import datetime
import os
import re
from pathlib import Path

from flax import nnx

from pixeljax.data import ImageSet, load_sample
from pixeljax.models import parameter_count, split_for_inference
from pixeljax.victims.accuracy import accuracy
from pixeljax.victims.checkpoint import as_stored, check_replaceable, read_metadata, save_victim


def portable(source: str) -> str:
    """A data description without the folders of this machine: ``/a/b/cifar10 (test)`` becomes
    ``cifar10 (test)`` and ``/my data/cifar 10`` becomes ``cifar 10``, so shipped metadata names
    the data, not where it lay."""
    path, split = re.fullmatch(r"(.*?)((?: \([^()]*\))?)", source).groups()
    if "/" in path or "\\" in path:
        path = re.split(r"[/\\]", path.rstrip("/\\"))[-1]
    return path + split


def hardware() -> str:
    """The machine in a few words, e.g. ``cpu, 2 cores`` or ``gpu: NVIDIA H100 (1), 16 cores``
    (exports run where the training ran: ``train --export``, or ``export`` beside it)."""
    import jax

    devices = jax.devices()
    kind = devices[0].platform if devices[0].platform == "cpu" else (
        f"{devices[0].platform}: {devices[0].device_kind} ({len(devices)})")
    return f"{kind}, {os.cpu_count()} cores"


def export_victim(model: nnx.Module, out: str | Path, *, architecture: str, test_set: ImageSet,
                  training: dict, dtype: str = "float32") -> dict:
    """Evaluates ``model`` on ``test_set`` and the shipped sample, then writes it to ``out``
    with its weights stored as ``dtype`` (see ``pixeljax.victims.checkpoint.save_victim``).

    The accuracies recorded are those of the weights as stored (read back as float32).

    Returns the metadata written beside the weights.

    Raises:
      CheckpointError: ``out`` holds something other than a victim (checked before any work).
    """
    check_replaceable(out)
    apply, params = split_for_inference(as_stored(model, dtype))
    sample = load_sample()
    metadata = {
        "architecture": architecture,
        "num_classes": int(model.num_classes),
        "parameter_count": parameter_count(model),
        "test_data": portable(test_set.source),
        "test_images": len(test_set),
        "test_accuracy": accuracy(apply, params, test_set.x, test_set.y),
        "sample_images": len(sample),
        "sample_accuracy": accuracy(apply, params, sample.x, sample.y),
        "exported": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "hardware": hardware(),
        **training,
    }
    if "train_data" in metadata:
        metadata["train_data"] = portable(str(metadata["train_data"]))
    save_victim(out, model, metadata, dtype=dtype)
    return read_metadata(out)
