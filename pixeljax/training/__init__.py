"""Training victims: recipes, the resumable loop and export to a shipped checkpoint."""

from pixeljax.training.config import TrainConfig
from pixeljax.training.export import export_victim
from pixeljax.training.loop import TrainResult, train
from pixeljax.training.recipes import load_recipe, load_stages, recipe_names
from pixeljax.training.stages import train_stages

__all__ = ["TrainConfig", "TrainResult", "export_victim", "load_recipe", "load_stages",
           "recipe_names", "train", "train_stages"]
