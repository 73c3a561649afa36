"""Training recipes by name: ``train/NAME.py`` defines ``RECIPE``, a :class:`TrainConfig`.

A recipe may also register a new architecture (``pixeljax.models.register_model``) before
defining its ``RECIPE``, so a user's own network trains and is attacked like the shipped ones.
"""

from __future__ import annotations

from pixeljax._plumbing.config_files import load_config, names_in
from pixeljax._shipped import shipped_folder
from pixeljax.training.config import TrainConfig

RECIPES = shipped_folder("train")


def recipe_names() -> list[str]:
    return names_in(RECIPES)


def load_recipe(name_or_path: str) -> TrainConfig:
    """The recipe ``train/NAME.py``, or the one in a ``.py`` file given by path."""
    return load_config(name_or_path, RECIPES, "RECIPE", TrainConfig, what="recipe",
                       names=recipe_names())
