"""Training recipes by name: ``train/NAME.py`` defines ``RECIPE``, a :class:`TrainConfig`.

A recipe may also register a new architecture (``pixeljax.models.register_model``) before
defining its ``RECIPE``, so a user's own network trains and is attacked like the shipped ones.
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

from pixeljax.errors import PixeljaxError
from pixeljax.training.config import TrainConfig

RECIPES = Path(__file__).resolve().parents[2] / "train"


def recipe_names() -> list[str]:
    return sorted(p.stem for p in RECIPES.glob("*.py") if not p.stem.startswith("_"))


def load_recipe(name_or_path: str) -> TrainConfig:
    """The recipe ``train/NAME.py``, or the one in a ``.py`` file given by path."""
    path = Path(name_or_path)
    if path.suffix != ".py":
        path = RECIPES / f"{name_or_path}.py"
        if not path.is_file():
            raise PixeljaxError(f"no training recipe {name_or_path!r}; expected one of "
                                f"{', '.join(recipe_names())} or a path to a recipe .py file")
    if not path.is_file():
        raise PixeljaxError(f"recipe file {path} does not exist")
    spec = importlib.util.spec_from_file_location(f"pixeljax_recipe_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    recipe = getattr(module, "RECIPE", None)
    if not isinstance(recipe, TrainConfig):
        raise PixeljaxError(f"{path} defines no RECIPE = TrainConfig(...)")
    return recipe
