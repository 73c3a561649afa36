"""Training victims: recipes, the resumable loop and export to a shipped checkpoint."""

from pixeljax.training.config import TrainConfig
from pixeljax.training.export import export_victim
from pixeljax.training.loop import TrainResult, train
from pixeljax.training.recipes import load_recipe, recipe_names

__all__ = ["TrainConfig", "TrainResult", "export_victim", "load_recipe", "recipe_names", "train"]
