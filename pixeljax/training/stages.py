"""A recipe's stages trained in order, each from the weights of the one before: a schedule
(``train/FAMILY.py``'s ``SCHEDULES``) is one command, resumable as a whole."""

from __future__ import annotations

from pathlib import Path

from pixeljax.data import ImageSet
from pixeljax.errors import PixeljaxError
from pixeljax.training.config import TrainConfig
from pixeljax.training.loop import TrainResult, train
from pixeljax.training.workdir import CONFIG, STAGE


def chained(stages: tuple[TrainConfig, ...],
            workdir: str | Path) -> list[tuple[TrainConfig, Path]]:
    """Each stage with its work dir: ``workdir`` itself for a single stage, else
    ``workdir/stage-K``; a stage after the first starts from the previous stage's work dir
    (its own ``init_from``, when it names one, wins: a schedule may restart from a shipped
    victim)."""
    workdir = Path(workdir)
    if not stages:
        raise PixeljaxError("a schedule needs at least one stage")
    if len(stages) == 1:
        return [(stages[0], workdir)]
    if (workdir / CONFIG).is_file():
        raise PixeljaxError(f"work dir {workdir} holds a one-stage run; a schedule of "
                            f"{len(stages)} stages trains in {workdir}/{STAGE}1, ...: use a new "
                            f"--workdir")
    dirs = [workdir / f"{STAGE}{k}" for k in range(1, len(stages) + 1)]
    return [(stage if k == 0 or stage.init_from is not None
             else stage.replace(init_from=str(dirs[k - 1])), dirs[k])
            for k, stage in enumerate(stages)]


def train_stages(stages: tuple[TrainConfig, ...], train_set: ImageSet, test_set: ImageSet,
                 workdir: str | Path, *, progress: bool = True,
                 on_stage=None) -> tuple[TrainResult, TrainConfig, Path]:
    """Trains ``stages`` in order (:func:`chained`); a finished stage is restored, not trained
    again, so a killed schedule resumes where it stopped. ``on_stage(k, n, config, dir)`` is
    called before each stage.

    Returns:
      The last stage's result, its config and its work dir.
    """
    steps = chained(stages, workdir)
    for k, (config, directory) in enumerate(steps, 1):
        if on_stage is not None:
            on_stage(k, len(steps), config, directory)
        result = train(config, train_set, test_set, directory, progress=progress)
    return result, config, directory
