"""A victim with a planted L-infinity weakness, shared by ``test_threshold.py`` and the
8-device process it starts.

Run as a script it is that process (``XLA_FLAGS`` set by the test before JAX starts)::

    python tests/_threshold_support.py devices OUT   # runs on 8 devices; their rows as JSON
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

# The weakness: the class flips once the image's mean moves by more than MARGIN pixel values,
# so a threshold attack can succeed at th = 3 and not at th = 2 (changes of at most 2 move the
# mean by at most 2).
MARGIN = 1.9
LEVEL = 3
SHAPE = (3, 3, 3)
ENGINE = dict(popsize=20, maxiter=60, crossover=0.2, slots=4, batch_size=32, segment=5)
CMAES = dict(ENGINE, search="cmaes", crossover=None)
VICTIM = {"model": "mean", "architecture": "mean", "checkpoint": "mean-test-weights"}


def mean_apply(params, images):
    """Three classes: 0 near the reference mean ``ref``; 1 once the mean rises by more than
    ``margin``, 2 once it falls by more than ``margin`` (logits ``gain`` per pixel value)."""
    import jax.numpy as jnp

    mean = jnp.mean(jnp.asarray(images, jnp.float32).reshape(images.shape[0], -1), axis=1)
    shift = mean - params["ref"]
    up, down = shift - params["margin"], -shift - params["margin"]
    return params["gain"] * jnp.stack([jnp.zeros_like(shift), up, down], axis=1)


def mean_model(ref: float = 100.0, margin: float = MARGIN, gain: float = 4.0):
    import jax
    import jax.numpy as jnp

    params = {"ref": jnp.float32(ref), "margin": jnp.float32(margin), "gain": jnp.float32(gain)}
    return jax.tree_util.Partial(mean_apply, params)


def images(n: int = 6, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` images of mean 100 (values spread over [0, 255], so clipping matters), class 0;
    the last one mislabelled (skipped)."""
    rng = np.random.default_rng(seed)
    x = rng.integers(40, 161, (n, *SHAPE)).astype(np.int64)
    x[:, 0, 0], x[:, 0, 1] = 0, 255  # values a change is clipped at
    # the means exactly 100: nudge values that are not at a bound
    for flat in x.reshape(n, -1):
        while excess := int(flat.sum()) - 100 * flat.size:
            movable = np.flatnonzero((flat > 0) & (flat < 255))[:abs(excess)]
            flat[movable] -= np.sign(excess)
    y = np.zeros(n, np.int64)
    y[-1] = 1
    return x.astype(np.uint8), y


def data(n: int = 6):
    from pixeljax.data.arrays import make_image_set

    x, y = images(n)
    return make_image_set(x, y, source="mean images", class_names=("same", "up", "down"))


def spec(**changes):
    from pixeljax.attack.spec import AttackSpec

    return AttackSpec(threshold=LEVEL, first=True).replace(**{**ENGINE, **changes})


def attack(out, search: str = "de", **kwargs) -> dict:
    """One attack_folder run (all targets) of the images into ``out``, searched by DE or
    (``search="cmaes"``) by CMA-ES."""
    from pixeljax.attack.run import attack_folder

    engine = CMAES if search == "cmaes" else ENGINE
    return attack_folder(mean_model(), data(), out, spec(goal="all-targets", **engine),
                         victim=VICTIM, progress=False, **kwargs)


if __name__ == "__main__":
    import jax

    from pixeljax.runs import results

    assert sys.argv[1] == "devices" and jax.local_device_count() == 8
    rows = {}
    for search in ("de", "cmaes"):
        attack(Path(sys.argv[2]) / search, search, devices=8)
        rows[search] = results.read_rows(Path(sys.argv[2]) / search)
    print(json.dumps(rows))
