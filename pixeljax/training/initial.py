"""The starting weights of a fine-tuning run (``TrainConfig.init_from``) and their lineage."""

from __future__ import annotations

import json
from pathlib import Path

from flax import nnx

from pixeljax.errors import PixeljaxError
from pixeljax.training.export import portable
from pixeljax.training.workdir import CONFIG, last_stage, restore_model
from pixeljax.victims.checkpoint import METADATA, load_victim
from pixeljax.victims.checkpoint_ref import SHIPPED

INIT = "init.json"  # in the work dir: where its starting weights came from


def load_initial(ref: str, architecture: str) -> tuple[nnx.Module, dict]:
    """The model ``ref`` names (a victim checkpoint folder, ``shipped:NAME``, or a training
    work dir) and a description of it for the fine-tuned victim's metadata.

    Raises:
      PixeljaxError: ``ref`` names nothing loadable, or a network of another architecture.
    """
    if ref.startswith(SHIPPED):
        name = ref[len(SHIPPED):]
        if name != architecture:
            raise PixeljaxError(f"init_from {ref!r} is a {name!r} network, not {architecture!r}")
        victim = load_victim(architecture)
        return victim.model, _lineage(ref, victim.metadata)
    path = last_stage(Path(ref).expanduser())
    if (path / METADATA).is_file():
        victim = load_victim(architecture, path)
        return victim.model, _lineage(portable(str(path)), victim.metadata)
    if (path / CONFIG).is_file():
        model, config, step, history, seconds = restore_model(path)
        if config.model != architecture:
            raise PixeljaxError(f"init_from {ref}: the work dir trains {config.model!r}, not "
                                f"{architecture!r}")
        lineage = {"workdir": portable(str(path)), "step": step,
                   "epochs": history[-1]["epoch"] if history else 0,
                   "test_accuracy": history[-1]["test_accuracy"] if history else None,
                   "training_seconds": round(seconds, 1), "recipe": config.to_dict(),
                   "history": history}
        if (path / INIT).is_file():  # that run was itself fine-tuned: keep the whole chain
            lineage["initialised_from"] = recorded(path)
        return model, lineage
    raise PixeljaxError(f"init_from {ref}: not a victim checkpoint folder, 'shipped:NAME' or "
                        f"a training work dir")


def _lineage(name: str, meta: dict) -> dict:
    keys = ("epochs", "steps", "test_accuracy", "training_seconds", "recipe", "history",
            "initialised_from")
    return {"checkpoint": name, **{k: meta[k] for k in keys if k in meta}}


def record(workdir: Path, lineage: dict) -> None:
    (workdir / INIT).write_text(json.dumps(lineage, indent=2, sort_keys=True) + "\n")


def recorded(workdir: str | Path) -> dict | None:
    """Where a work dir's starting weights came from; None for a random initialisation."""
    path = Path(workdir) / INIT
    if not path.is_file():
        return None
    try:
        lineage = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise PixeljaxError(f"{path} is damaged ({type(e).__name__}: {e}); it records where "
                            f"the work dir's starting weights came from: restore it, or train "
                            f"into a new work dir") from None
    if not isinstance(lineage, dict):
        raise PixeljaxError(f"{path} is damaged: expected an object of where the starting "
                            f"weights came from, got {type(lineage).__name__}")
    return lineage
