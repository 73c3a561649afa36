"""``pixeljax export-adversarial``: a results folder's successful adversarial images as a plain
``.npz`` that ``--data`` accepts, to train on, to attack again, or to hand to another tool."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from pixeljax._plumbing.files import atomic_path
from pixeljax.analysis.attacks import load_attacks
from pixeljax.attack.perturb import adversarial_images
from pixeljax.errors import PixeljaxError


def check_destination(out: str | Path) -> Path:
    """``out`` is a new ``.npz`` file in a folder that exists."""
    out = Path(out)
    if out.suffix != ".npz":
        raise PixeljaxError(f"--out {out}: give a file name ending in .npz")
    if out.exists() or out.is_symlink():
        raise PixeljaxError(f"--out {out} exists; give a new file name (nothing is replaced)")
    if not out.parent.is_dir():
        raise PixeljaxError(f"--out {out}: folder {out.parent} does not exist")
    return out


def export_adversarial(results: str | Path, out: str | Path) -> dict:
    """Writes the successful attacks of the results folder ``results`` to ``out``:

    * ``x`` (N, H, W, C) uint8 adversarial images and ``y`` (N,) their true classes (what
      ``--data`` reads; ``class_names`` too);
    * ``target`` (N,) the target (-1: non-targeted), ``adversarial_class`` (N,) the class the
      victim gives the image, ``pixels`` (N, pixels, 2 + C) the changed pixels (x, y,
      colour...) (a threshold attack's: ``delta`` (N, H, W, C), its change of every pixel
      value), ``source_index`` (N,) the attacked image's index in the data attacked and
      ``attack_id`` (N,);
    * ``attacked``: the results folder's ``config.json`` as a JSON string, i.e. what these
      images fool (the victim and its checkpoint, any defence, the precision it was scored in,
      the attack and a fingerprint of the data attacked).

    Returns ``{"file", "images", "model"}``.

    Raises:
      PixeljaxError: ``out`` is not a new ``.npz`` file, the folder cannot be read as a
        results folder (see :func:`~pixeljax.analysis.load_attacks`), or it holds no success.
    """
    out = check_destination(out)
    attacks = load_attacks(results).successful()
    if not len(attacks):
        raise PixeljaxError(f"{results}: no successful attack to export")
    found = attacks.found
    adversarial = adversarial_images(found, attacks.images)
    change = {"delta": found.delta} if found.threshold else {"pixels": found.perturbation}
    arrays = {"x": adversarial.round().astype(np.uint8), "y": found.label,
              "target": found.target, "adversarial_class": found.adversarial_class, **change,
              "source_index": attacks.found.image_index, "attack_id": attacks.found.attack_id,
              "class_names": np.asarray(attacks.class_names),
              "attacked": np.asarray(json.dumps(attacks.config, sort_keys=True))}
    try:  # whole or not at all, and never over a file made meanwhile
        with atomic_path(out, exclusive=True) as tmp, open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)
    except FileExistsError:
        raise PixeljaxError(f"--out {out} appeared while writing; nothing was replaced") from None
    return {"file": str(out), "images": len(attacks), "model": attacks.model_name}
