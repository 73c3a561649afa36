"""The train-and-attack pipeline's first half: a victim without a checkpoint is trained with its
recipe and exported, so it can be attacked like a shipped one.

    OUT/<victim>/train/        the training run (resumable: a killed run continues)
    OUT/<victim>/checkpoint/   the exported victim (weights + metadata.json)
"""

from __future__ import annotations

from pathlib import Path

from pixeljax.data import ImageSet
from pixeljax.errors import PixeljaxError
from pixeljax.evaluation.plan import WORKDIR, VictimPlan
from pixeljax.training import export_victim, train


def _first(data: ImageSet, n: int | None) -> ImageSet:
    return data if n is None or n >= len(data) else data.take(range(n))


def train_victim(victim: VictimPlan, train_set: ImageSet, test_set: ImageSet, out: str | Path,
                 *, suite: str, progress: bool = True) -> dict:
    """Trains ``victim`` with its recipe into ``OUT/<name>/train`` and exports it to
    ``victim.checkpoint``.

    Args:
      victim: a victim that ``needs_training``.
      train_set: training images (the first ``victim.victim.train_images`` are used).
      test_set: evaluated after every epoch and at export (the first ``eval_images``).
      out: the suite's results folder.
      suite: the suite's name, recorded in the checkpoint's metadata.
      progress: show the training progress bar.

    Returns:
      The exported checkpoint's metadata.
    """
    if victim.recipe is None:
        raise PixeljaxError(f"victim {victim.victim.name} has no recipe to train it with")
    train_set = _first(train_set, victim.victim.train_images)
    test_set = _first(test_set, victim.victim.eval_images)
    workdir = Path(out) / victim.victim.name / WORKDIR
    result = train(victim.recipe, train_set, test_set, workdir, progress=progress)
    training = {"train_data": train_set.source, "train_images": len(train_set),
                "epochs": result.epochs, "steps": result.steps,
                "training_seconds": round(result.training_seconds, 1),
                "recipe": victim.recipe.to_dict(), "history": result.history,
                "trained_by_suite": suite}
    return export_victim(result.model, victim.checkpoint, architecture=victim.architecture,
                         test_set=test_set, training=training)
