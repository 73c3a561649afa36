"""The attacks of a results folder as arrays: clean images, candidates, labels and targets.

Reads the folder written by the attack engine (see :mod:`pixeljax.runs.results`), loads the victim and
the attacked images it names, and checks that they belong together, so that every analysis of
Vargas & Su ("Understanding the One-Pixel Attack: Propagation Maps and Locality Analysis",
arXiv 1902.02947) starts from the exact adversarial images the attack found:
``apply_candidate(images[i], found.candidates[i])``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import numpy as np

from pixeljax._plumbing.notices import quiet_notes
from pixeljax.attack.perturb import adversarial_images
from pixeljax.attack.selection import select
from pixeljax.attack.spec import AttackSpec
from pixeljax.data import ImageSet, load_dataset
from pixeljax.errors import PixeljaxError
from pixeljax.runs.attack_result import AttackResult
from pixeljax.runs.modes import Mode
from pixeljax.runs.results import (
    CONFIG,
    DATA_FINGERPRINT,
    check_victim,
    data_fingerprint,
    read_config,
)
from pixeljax.runs.victim_record import VictimRecord
from pixeljax.sweep.spec import SweepSpec
from pixeljax.victims import checkpoint_ref
from pixeljax.victims.attacked import as_attacked
from pixeljax.victims.checkpoint import load_victim
from pixeljax.victims.defences import judged
from pixeljax.victims.loaded import LoadedVictim


@dataclasses.dataclass(frozen=True)
class AttackSet:
    """The finished (successful or failed) attacks of one results folder, with what they
    attacked.

    Attributes:
      directory: the results folder.
      config: its ``config.json``.
      victim: the attacked network (behind its defence, as the attack saw it).
      found: the attacks (:class:`~pixeljax.runs.attack_result.AttackResult`; no skipped ones).
      images: (N, H, W, C) uint8 clean image of each attack.
      class_names: names of the data set's classes, in label order.
    """

    directory: Path
    config: dict
    victim: LoadedVictim
    found: AttackResult
    images: np.ndarray
    class_names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.found)

    @property
    def model_name(self) -> str:
        return self.config["model"]

    def take(self, selection) -> "AttackSet":
        """The attacks at ``selection`` (indices or a boolean mask)."""
        return dataclasses.replace(self, found=self.found.take(selection),
                                   images=self.images[selection])

    def successful(self) -> "AttackSet":
        return self.take(self.found.success)


def _positions(data: ImageSet, image_index: np.ndarray, directory: Path) -> np.ndarray:
    """Positions in ``data`` of the attacked images.

    ``image_index`` is what the attack engine records: ``ImageSet.index`` of the image, i.e. its
    position in the split (for the shipped sample, its position in the real test split).
    """
    lookup = {int(v): p for p, v in enumerate(data.index)}
    missing = sorted({int(i) for i in image_index} - set(lookup))
    if missing:
        raise PixeljaxError(f"{directory}: image_index {missing[:5]} not in {data.source} "
                            f"({len(data)} images); the results were made on other data")
    return np.asarray([lookup[int(i)] for i in image_index], np.int64)


# A stored candidate's true-class probability, re-scored densely: loose enough for another
# device's or scorer's rounding (TF32 matrix units included), tight for a changed victim or data.
RESCORE_TOLERANCE = 1e-2


def _check_data(config: dict, victim: LoadedVictim, data: ImageSet, directory: Path) -> None:
    """The data named in ``config`` still hold the images the run attacked: the run's own
    selection, made again, has the fingerprint the run recorded."""
    recorded = config.get(DATA_FINGERPRINT)
    if not recorded:
        return
    try:
        spec = (SweepSpec.from_config(config) if config.get("mode") == Mode.SWEEP
                else AttackSpec.from_config(config))
        with quiet_notes():
            p = select(victim.predict, data.x, data.y, spec.selection, precision=spec.precision,
                       image_ids=data.index, source=data.source)
        same = data_fingerprint(p.images, p.labels, p.image_ids) == recorded
    except PixeljaxError:
        same = False
    if not same:
        raise PixeljaxError(f"{directory}: {config.get('data')!r} ({data.source}) no longer holds "
                            f"the images and labels the run attacked (their fingerprint "
                            f"differs from the one in {CONFIG}); restore the data")


def _check_scores(victim: LoadedVictim, images, found: AttackResult, directory: Path) -> None:
    """The stored candidates still score as recorded (a guard for anything else that changed):
    the true class's probability of each adversarial image, re-scored densely."""
    if not len(found):
        return
    from pixeljax.attack.pipeline import clean_logits

    labels, recorded = found.label, found.true_prob_after
    adversarial = adversarial_images(found, images)
    probs = np.asarray(jax.nn.softmax(clean_logits(victim.predict, adversarial, 256), -1))
    off = np.abs(probs[np.arange(len(labels)), labels] - recorded) > RESCORE_TOLERANCE
    if off.any():
        raise PixeljaxError(f"{directory}: {int(off.sum())} of {len(off)} stored adversarial "
                            f"candidates no longer score as recorded (true-class probability "
                            f"off by more than {RESCORE_TOLERANCE}); the victim or the data "
                            f"changed since the run")


def attacked_victim(config: dict, directory: str | Path, images: np.ndarray) -> LoadedVictim:
    """The victim a results folder's ``config.json`` names, behind its defence, as the attack
    saw it (``images``: some of the data, to tell logits from probabilities).

    Raises:
      PixeljaxError: it cannot be loaded, or its checkpoint is not the one that was attacked.
    """
    record = VictimRecord.from_config(config)
    victim = load_victim(checkpoint_ref.architecture_of(config),
                         checkpoint_ref.resolve(config, directory),
                         input_scale=record.input_scale, outputs=record.outputs,
                         layout=record.layout)
    check_victim(config, victim, directory)
    return as_attacked(victim, images, defence=record.defence, translate=False)


def load_attacks(directory: str | Path, *, model: str | None = None,
                 limit: int | None = None, pixels_for: str | None = None) -> AttackSet:
    """Loads the finished attacks of a results folder with their victim and clean images.

    Skipped rows (images that were not attacked) are left out.

    Args:
      directory: a results folder written by ``pixeljax attack``.
      model: when given, the victim (its name or architecture) the results must be of.
      limit: keep only the first ``limit`` finished attacks (in file order).
      pixels_for: an analysis that follows the changed pixels (named in the message): a
        threshold attack's folder, which changes every pixel, is refused.

    Raises:
      PixeljaxError: a missing folder or ``config.json``, results of another model than
        ``model``, rows that do not match the data set named in the config, or a victim that
        cannot be loaded.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise PixeljaxError(f"{directory} is a file, not a results folder" if directory.exists()
                            else f"results folder {directory} does not exist")
    if not (directory / CONFIG).is_file():
        raise PixeljaxError(f"{directory} is not an attack results folder (no {CONFIG})")
    config = read_config(directory)
    missing = {"model", "data", "split"} - set(config)
    if missing:
        raise PixeljaxError(f"{directory / CONFIG} lacks {', '.join(sorted(missing))}")
    try:
        architecture = checkpoint_ref.architecture_of(config)
        checkpoint_ref.resolve(config, directory)  # an unusable reference named first
        record = VictimRecord.from_config(config)
    except PixeljaxError as e:
        raise PixeljaxError(f"{directory}: {e}") from None
    if pixels_for is not None and config.get("threshold") is not None:
        raise PixeljaxError(f"{directory} holds a threshold attack (every pixel value changed "
                            f"by at most {config['threshold']}); {pixels_for} follows the "
                            f"changed pixels of a pixel attack")
    if model is not None and model not in (record.model, architecture):
        raise PixeljaxError(f"{directory} holds attacks on {record.model!r}, not on "
                            f"{model!r}")
    if limit is not None and limit < 1:
        raise PixeljaxError(f"limit must be a positive number of attacks, got {limit}")
    found = AttackResult.from_folder(directory)
    if not len(found):
        raise PixeljaxError(f"{directory} holds no finished attack: its results.csv has no rows "
                            f"(the run stopped before its first attack finished); run its "
                            f"command again to resume it")
    found = found.attacked().take(slice(0, limit))
    data = load_dataset(record.data, record.split)
    # as the run judged its results: behind the defence (on fresh draws of any noise)
    victim = judged(attacked_victim(config, directory, data.x))
    _check_data(config, victim, data, directory)
    positions = _positions(data, found.image_index, directory)
    wrong = found.label != data.y[positions]
    if wrong.any():
        i = int(np.argmax(wrong))
        raise PixeljaxError(f"{directory}: attack {found.attack_id[i]} records label "
                            f"{found.label[i]} for image {found.image_index[i]}, but "
                            f"{data.source} says {data.y[positions[i]]}; the results were made "
                            f"on other data")
    if len(found) and found.channels != data.x.shape[-1]:
        raise PixeljaxError(f"{directory}: results.csv holds attacks on {found.channels}-channel "
                            f"images, {data.source} has {data.x.shape[-1]} channels")
    _check_scores(victim, data.x[positions], found, directory)
    return AttackSet(directory=directory, config=config, victim=victim, found=found,
                     images=data.x[positions], class_names=data.class_names)
