"""Locality analysis: does an attack still succeed when its pixels move?

Vargas & Su, "Understanding the One-Pixel Attack: Propagation Maps and Locality Analysis",
arXiv 1902.02947: re-apply a successful attack's colours at the positions around the attacked
pixel and measure how often the attack still succeeds, by distance. Nearby pixels sharing the
vulnerability shows that it lies in receptive fields rather than in single pixels or neurons.

Conventions:
  * An offset ``(dy, dx)`` moves every pixel of a candidate by the same amount, so a multi-pixel
    attack's pattern is shifted as a whole.
  * Distance is the Chebyshev distance ``max(|dx|, |dy|)``: distance d is the ring of
    ``8 d`` positions around the attacked pixel (1 position at d = 0).
  * Offsets that push any pixel of the pattern outside the image are skipped (not counted).
  * Success at a shifted position: for a targeted attack (``target >= 0``) the prediction equals
    the target; for a non-targeted one (``target == -1``) it differs from the true label.

All shifted images of all attacks are evaluated as one large job list, in fixed-size compiled
batches (one compilation per batch shape, not one forward per position).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from pixeljax.attack.perturb import apply_candidates, canonical
from pixeljax.errors import PixeljaxError

NOT_EVALUATED = -1


def check_radius(radius, image_shape: tuple[int, ...]) -> int:
    """The radius as an int, if it is a whole number in ``[0, min(H, W) - 1]``.

    Raises:
      PixeljaxError: a negative radius, a non-integer, or one that reaches outside the image.
    """
    h, w = image_shape[:2]
    if isinstance(radius, bool) or not float(radius).is_integer():
        raise PixeljaxError(f"radius must be a whole number of pixels, got {radius!r}")
    radius = int(radius)
    if radius < 0 or radius >= min(h, w):
        raise PixeljaxError(f"radius must lie in [0, {min(h, w) - 1}] for {h}x{w} images, "
                            f"got {radius}")
    return radius


def offsets(radius: int) -> np.ndarray:
    """(K, 2) int32 offsets ``(dy, dx)`` with Chebyshev distance <= radius, nearest first.

    ``K = (2 radius + 1) ** 2``; the first offset is (0, 0).
    """
    d = np.arange(-radius, radius + 1)
    grid = np.stack(np.meshgrid(d, d, indexing="ij"), -1).reshape(-1, 2)  # (K, 2) (dy, dx)
    distance = np.abs(grid).max(-1)
    return grid[np.lexsort((grid[:, 1], grid[:, 0], distance))].astype(np.int32)


def shift_candidates(candidates: np.ndarray, shifts: np.ndarray,
                     image_shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Every candidate moved by every offset.

    Args:
      candidates: (N, pixels * (2 + C)) candidates ``[x0, y0, c..., x1, ...]``.
      shifts: (K, 2) offsets ``(dy, dx)``.
      image_shape: (H, W, C).

    Returns:
      ``(shifted, inside)``: (N, K, D) float32 candidates as applied (integer coordinates,
      clipped colours) and (N, K) bool, whether every pixel of the shifted pattern lies inside
      the image.
    """
    h, w, c = image_shape
    n, dim = candidates.shape
    genes = np.asarray(canonical(jnp.asarray(candidates, jnp.float32), tuple(image_shape)))
    genes = genes.reshape(n, 1, -1, 2 + c).repeat(len(shifts), axis=1)  # (N, K, pixels, 2 + C)
    genes[..., 0] += shifts[None, :, None, 1]  # columns move by dx
    genes[..., 1] += shifts[None, :, None, 0]  # rows move by dy
    inside = ((genes[..., 0] >= 0) & (genes[..., 0] < w) &
              (genes[..., 1] >= 0) & (genes[..., 1] < h)).all(-1)
    return genes.reshape(n, len(shifts), dim), inside


@jax.jit
def _success_batch(predict, images, labels, targets, attack, candidates):
    """Whether each shifted attack succeeds.

    Args:
      predict: ``predict(images) -> logits`` (a pytree, e.g. ``LoadedVictim.predict``).
      images: (N, H, W, C) all clean images; labels, targets: (N,).
      attack: (B,) index of each job's attack; candidates: (B, D) its shifted candidate.

    Returns:
      (B,) bool.
    """
    adversarial = apply_candidates(images[attack], candidates)  # (B, H, W, C)
    predicted = jnp.argmax(predict(adversarial), axis=-1)
    target, label = targets[attack], labels[attack]
    return jnp.where(target >= 0, predicted == target, predicted != label)


@dataclasses.dataclass(frozen=True)
class LocalityResult:
    """The outcome of every attack at every offset.

    Attributes:
      offsets: (K, 2) ``(dy, dx)``, nearest first.
      distance: (K,) Chebyshev distance of each offset.
      outcome: (N, K) int8: 1 success, 0 failure, -1 not evaluated (pixels outside the image).
    """

    offsets: np.ndarray
    distance: np.ndarray
    outcome: np.ndarray

    @property
    def radius(self) -> int:
        return int(self.distance.max())

    def by_distance(self) -> list[dict]:
        """One row per distance: attacks, evaluated positions, successes and success rate."""
        rows = []
        for d in range(self.radius + 1):
            block = self.outcome[:, self.distance == d]  # (N, positions at d)
            evaluated = block != NOT_EVALUATED
            successes = int((block == 1).sum())
            rows.append({"distance": d, "positions": int(block.shape[1]),
                         "attacks": int(evaluated.any(1).sum()),
                         "evaluated": int(evaluated.sum()), "succeeded": successes,
                         "success_rate": successes / evaluated.sum() if evaluated.any()
                         else float("nan")})
        return rows


def locality(predict, images: np.ndarray, candidates: np.ndarray, labels: np.ndarray,
             targets: np.ndarray, *, radius: int, batch_size: int = 512) -> LocalityResult:
    """Re-applies every attack at every offset within ``radius`` and records its success.

    Distance is Chebyshev, ``max(|dx|, |dy|)``; multi-pixel patterns move as a whole; offsets
    that push a pixel outside the image are skipped; targeted attacks (``target >= 0``) succeed
    when the prediction is the target, non-targeted ones (``target == -1``) when it is not the
    label. At distance 0 this re-evaluates the attack itself.

    Args:
      predict: ``predict(images) -> logits`` over pixel-space images, preferably a pytree
        (``LoadedVictim.predict``) so the weights are not compiled in as constants.
      images: (N, H, W, C) clean images.
      candidates: (N, pixels * (2 + C)) the attacks' candidates.
      labels: (N,) true classes.
      targets: (N,) target classes, -1 for non-targeted attacks.
      radius: largest distance, in ``[0, min(H, W) - 1]``.
      batch_size: shifted images per compiled call (the last batch is padded).

    Returns:
      :class:`LocalityResult`.

    Raises:
      PixeljaxError: a radius outside the image or mismatched array shapes.
    """
    images = np.asarray(images)
    if images.ndim != 4:
        raise PixeljaxError(f"images must be (N, H, W, C), got shape {images.shape}")
    radius = check_radius(radius, images.shape[1:])
    candidates = np.asarray(candidates, np.float32)
    n, c = len(images), images.shape[-1]
    if candidates.ndim != 2 or len(candidates) != n or candidates.shape[1] % (2 + c) or \
            candidates.shape[1] == 0:
        raise PixeljaxError(f"candidates must be (N, pixels * {2 + c}) for {n} images, got "
                            f"shape {candidates.shape}")
    if len(labels) != n or len(targets) != n:
        raise PixeljaxError(f"need one label and one target per image ({n}), got "
                            f"{len(labels)} and {len(targets)}")
    if not isinstance(predict, jax.tree_util.Partial):
        predict = jax.tree_util.Partial(predict)  # a pytree, so it can enter the compiled call
    shifts = offsets(radius)
    distance = np.abs(shifts).max(-1)
    outcome = np.full((n, len(shifts)), NOT_EVALUATED, np.int8)
    if n == 0:
        return LocalityResult(shifts, distance, outcome)
    shifted, inside = shift_candidates(candidates, shifts, images.shape[1:])
    attack, offset = np.nonzero(inside)  # (J,) jobs: attack index and offset index
    jobs = shifted[attack, offset]  # (J, D)
    device_images = jnp.asarray(images)
    device_labels = jnp.asarray(labels, jnp.int32)
    device_targets = jnp.asarray(targets, jnp.int32)
    batch_size = max(1, min(batch_size, len(jobs)))
    success = np.zeros(len(jobs), bool)
    for start in range(0, len(jobs), batch_size):
        idx = np.arange(start, start + batch_size) % len(jobs)  # pad by wrapping round
        keep = min(batch_size, len(jobs) - start)
        result = _success_batch(predict, device_images, device_labels, device_targets,
                                jnp.asarray(attack[idx], jnp.int32), jnp.asarray(jobs[idx]))
        success[start:start + keep] = np.asarray(result)[:keep]
    outcome[attack, offset] = success
    return LocalityResult(shifts, distance, outcome)
