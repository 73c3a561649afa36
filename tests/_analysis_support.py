"""Builds small, self-consistent results folders for the analysis tests.

The victim is an untrained ``tiny`` network saved as a checkpoint. Its images are made to lie
near its decision boundary (a clean image blended towards one of another class until just before
the prediction switches), so one-pixel attacks found by a brute-force, batched search over a few
positions and colours succeed. Every row is what the attack engine would write: the recorded
outcome is the victim's own verdict on ``apply_candidate(image, candidate)``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax.numpy as jnp
import numpy as np

from pixeljax.attack.perturb import apply_candidates
from pixeljax.models import create_model
from pixeljax.runs.attack_result import Status
from pixeljax.runs.results import ResultsWriter, check_config
from pixeljax.victims.accuracy import predict_logits
from pixeljax.victims.checkpoint import load_victim, save_victim
from pixeljax.victims.loaded import LoadedVictim

MARGIN = 1e-4  # logit margin of every recorded outcome, far above float noise (~1e-8)


@dataclasses.dataclass(frozen=True)
class Fixture:
    directory: Path
    victim: LoadedVictim
    images: np.ndarray  # (N, 32, 32, 3) the whole data set, uint8
    labels: np.ndarray
    rows: list[dict]


def save_tiny(directory: Path) -> LoadedVictim:
    model = create_model("tiny", seed=0)
    save_victim(directory, model, {"architecture": "tiny", "num_classes": 10})
    return load_victim("tiny", directory)


def _logits(victim: LoadedVictim, images) -> np.ndarray:
    return predict_logits(victim.apply, victim.params, np.asarray(images), batch_size=128)


def boundary_images(victim: LoadedVictim, n: int, seed: int = 0) -> np.ndarray:
    """``n`` uint8 images each just on its own class's side of a decision boundary."""
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < n:
        pair = rng.integers(0, 256, (2, 1, 1, 3)) + rng.normal(0, 40, (2, 32, 32, 3))
        alphas = np.linspace(0, 1, 128)[:, None, None, None]
        blends = np.clip(np.round((1 - alphas) * pair[0] + alphas * pair[1]), 0, 255)
        predicted = _logits(victim, blends.astype(np.uint8)).argmax(-1)
        switch = np.nonzero(predicted != predicted[0])[0]
        if len(switch):
            out.append(blends[switch[0] - 1].astype(np.uint8))
    return np.stack(out)


def grid_candidates(step: int = 5) -> np.ndarray:
    """(K, 5) one-pixel candidates: a grid of positions times the 8 corner colours."""
    colours = [(r, g, b) for r in (0, 255) for g in (0, 255) for b in (0, 255)]
    return np.asarray([[x, y, *c] for x in range(1, 32, step) for y in range(1, 32, step)
                       for c in colours], np.float32)


def build_results(root: Path, *, n_images: int = 4, seed: int = 0) -> Fixture:
    """A checkpoint, a data file and a results folder with successful, failed, targeted and
    skipped rows on ``n_images`` near-boundary images."""
    root.mkdir(parents=True, exist_ok=True)
    victim = save_tiny(root / "tiny")
    images = boundary_images(victim, n_images, seed)
    clean = _logits(victim, images)
    labels = clean.argmax(-1).astype(np.int64)
    np.savez(root / "data.npz", x=images, y=labels)
    candidates = grid_candidates()
    k = len(candidates)
    adversarial = apply_candidates(jnp.asarray(np.repeat(images, k, 0)),
                                   jnp.asarray(np.tile(candidates, (n_images, 1))))
    logits = _logits(victim, adversarial).reshape(n_images, k, -1)
    rows = []
    for i in range(n_images):
        z = logits[i]  # (K, classes)
        top2 = np.sort(z, -1)[:, -2:]
        clear = top2[:, 1] - top2[:, 0] > MARGIN  # no near-tie anywhere
        predicted = z.argmax(-1)
        flips = np.nonzero(clear & (predicted != labels[i]))[0]
        stays = np.nonzero(clear & (predicted == labels[i]))[0]
        assert len(flips) and len(stays), "the search found no clear success and failure"
        centre = np.abs(candidates[flips, :2] - 16).max(-1)
        chosen = [(flips[np.argmin(centre)], -1),  # non-targeted success near the centre
                  (stays[0], -1),  # non-targeted failure
                  (flips[-1], int(predicted[flips[-1]])),  # targeted success
                  (stays[-1], int((labels[i] + 1) % 10))]  # targeted failure
        for c, target in chosen:
            success = predicted[c] == target if target >= 0 else predicted[c] != labels[i]
            rows.append(_row(len(rows), i, labels[i], target, success, predicted[c],
                             _softmax(clean[i]), _softmax(z[c]), candidates[c]))
    rows.append({**_row(len(rows), 0, labels[0], -1, False, labels[0], _softmax(clean[0]),
                        _softmax(clean[0]), np.zeros(5)), "status": Status.SKIPPED})
    directory = root / "results"
    check_config(directory, {"model": "tiny", "architecture": "tiny",
                             "checkpoint": str(root / "tiny"),
                             "data": str(root / "data.npz"), "split": "test", "pixels": 1,
                             "mode": "mixed"})
    with ResultsWriter(directory, pixels=1) as writer:
        writer.write(rows)
    return Fixture(directory, victim, images, labels, rows)


def _softmax(z: np.ndarray) -> np.ndarray:
    p = np.exp(z - z.max())
    return p / p.sum()


def _row(attack_id, image, label, target, success, adversarial, before, probs,
         candidate) -> dict:
    row = {"attack_id": attack_id, "image_index": image, "label": int(label),
           "target": int(target), "status": Status.SUCCESS if success else Status.FAILURE,
           "success": int(success), "adversarial_class": int(adversarial),
           "confidence": float(probs[adversarial]), "true_prob_before": float(before[label]),
           "true_prob_after": float(probs[label]), "generations": 1, "evaluations": 1,
           "nonfinite_evaluations": 0, "precision_flip": 0}
    row.update({f: float(v) for f, v in zip(("x0", "y0", "r0", "g0", "b0"), candidate)})
    return row


_BUILT: dict[str, Fixture] = {}


def shared_results(tmp_path_factory) -> Fixture:
    """One results folder for the whole test session (read-only for the tests)."""
    if "results" not in _BUILT:
        _BUILT["results"] = build_results(tmp_path_factory.mktemp("analysis"))
    return _BUILT["results"]
