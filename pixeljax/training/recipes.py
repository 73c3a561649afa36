"""Training recipes by name, one file per family: ``train/FAMILY.py`` defines ``RECIPE``, a
:class:`TrainConfig` (the full recipe, named ``FAMILY``), and may define ``SCHEDULES``, named
schedules of stages derived from it (``RECIPE.replace(...)``), each named ``FAMILY_SCHEDULE``:

    SCHEDULES = {"cpu": (RECIPE.replace(epochs=3, batch_size=64),
                         RECIPE.replace(epochs=5, batch_size=64, learning_rate=0.03))}

``pixeljax train vgg16_cpu`` trains the stages in order, each from the weights of the one
before (:func:`pixeljax.training.stages.train_stages`); nothing chains them by hand.

A recipe may also register a new architecture (``pixeljax.models.register_model``) before
defining its ``RECIPE``, so a user's own network trains and is attacked like the shipped ones.
"""

from __future__ import annotations

from pathlib import Path

from pixeljax._plumbing.config_files import load_module, names_in
from pixeljax._shipped import shipped_folder
from pixeljax.errors import PixeljaxError
from pixeljax.training.config import TrainConfig

RECIPES = shipped_folder("train")


def _schedules(module, path) -> dict[str, tuple[TrainConfig, ...]]:
    """The module's checked ``SCHEDULES``: names to non-empty tuples of TrainConfig."""
    schedules = getattr(module, "SCHEDULES", {})
    if not isinstance(schedules, dict) or not all(
            isinstance(k, str) and isinstance(v, tuple) and v
            and all(isinstance(c, TrainConfig) for c in v) for k, v in schedules.items()):
        raise PixeljaxError(f"{path}: SCHEDULES must map names to non-empty tuples of "
                            f"TrainConfig (stages)")
    return schedules


def recipe_names() -> list[str]:
    """Every shipped recipe: each family's full recipe and its named schedules."""
    names = []
    for family in names_in(RECIPES):
        module, path = load_module(family, RECIPES, what="recipe", names=[])
        names += [family] + [f"{family}_{s}" for s in _schedules(module, path)]
    return sorted(names)


def _family(name: str) -> tuple[str, str | None]:
    """The family file and schedule a shipped recipe name points to."""
    families = names_in(RECIPES)
    if name.replace("-", "_") in families:
        return name.replace("-", "_"), None
    for family in sorted(families, key=len, reverse=True):
        if name.replace("-", "_").startswith(family + "_"):
            return family, name.replace("-", "_")[len(family) + 1:]
    return name, None  # unknown


def load_stages(name_or_path: str) -> tuple[TrainConfig, ...]:
    """The stages of a recipe: one for a full recipe (``train/NAME.py`` or a ``.py`` file given
    by path), those of a schedule for ``FAMILY_SCHEDULE`` (or ``path/to/file.py:SCHEDULE``)."""
    file, _, named = str(name_or_path).rpartition(".py:")
    if file:  # FILE.py:SCHEDULE
        family, schedule = f"{file}.py", named
    elif Path(name_or_path).suffix == ".py":
        family, schedule = name_or_path, None
    else:
        family, schedule = _family(name_or_path)
        if family not in names_in(RECIPES):
            raise _unknown(name_or_path)
    module, path = load_module(family, RECIPES, what="recipe", names=[])
    if schedule is not None:
        schedules = _schedules(module, path)
        if schedule not in schedules:
            raise _unknown(name_or_path)
        return schedules[schedule]
    recipe = getattr(module, "RECIPE", None)
    if not isinstance(recipe, TrainConfig):
        raise PixeljaxError(f"{path} defines no RECIPE = TrainConfig(...)")
    return (recipe,)


def _unknown(name: str) -> PixeljaxError:
    return PixeljaxError(f"unknown recipe {name!r}; expected one of {', '.join(recipe_names())} "
                         f"or a path to a recipe .py file (FILE.py:SCHEDULE for one of its "
                         f"SCHEDULES)")


def load_recipe(name_or_path: str) -> TrainConfig:
    """A one-stage recipe (see :func:`load_stages`), e.g. for a suite that trains a victim."""
    stages = load_stages(name_or_path)
    if len(stages) > 1:
        raise PixeljaxError(f"recipe {name_or_path} trains in {len(stages)} stages: run it with "
                            f"'pixeljax train {name_or_path}', which chains them, and name the "
                            f"exported checkpoint instead")
    return stages[0]
