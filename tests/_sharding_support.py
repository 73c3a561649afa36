"""A tiny victim and attack run shared by ``test_sharding.py`` and the processes it starts.

Run as a script it is one such process (the environment, e.g. ``XLA_FLAGS``, is set by the
test before JAX starts)::

    python tests/_sharding_support.py devices OUT    # the 8-device checks, JSON to stdout
    python tests/_sharding_support.py worker OUT ADDRESS N I [SEED]   # process I of N
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

ENGINE = dict(pixels=1, popsize=8, maxiter=6, strategy="rand1", slots=4, batch_size=16,
              segment=2)
N_IMAGES = 12


def linear_apply(weights, images):
    """A linear classifier over 8x8 RGB images in [0, 255]: one pixel can flip it."""
    import jax.numpy as jnp

    w, b = weights
    return jnp.asarray(images, jnp.float32).reshape(images.shape[0], -1) / 255.0 @ w + b


def victim_and_data():
    """``(predict, ImageSet)``: a linear victim and 12 images at growing distances from a
    decision boundary (so attacks succeed at different generations, or fail), two of them
    mislabelled (skipped)."""
    import jax

    from pixeljax.data.arrays import make_image_set

    rng = np.random.default_rng(0)
    w = rng.normal(size=(8 * 8 * 3, 10)).astype(np.float32)
    b = np.zeros(10, np.float32)
    predict = jax.tree_util.Partial(linear_apply, (w, b))
    x = rng.integers(0, 256, (300, 8, 8, 3), dtype=np.uint8)
    logits = np.asarray(jax.jit(linear_apply)((w, b), x))
    top = np.sort(logits, -1)
    order = np.argsort(top[:, -1] - top[:, -2])
    pick = order[::15][:12]
    y = logits[pick].argmax(-1).astype(np.int32)
    y[[3, 10]] = (y[[3, 10]] + 1) % 10  # misclassified: skipped, never attacked
    return predict, make_image_set(x[pick], y, source="test images")


def spec(seed: int = 0, mode: str = "all-targets"):
    from pixeljax.attack.spec import AttackSpec

    return AttackSpec().replace(goal=mode, seed=seed, n_images=N_IMAGES, first=True, **ENGINE)


VICTIM = {"model": "linear", "architecture": "linear", "checkpoint": "linear-test-weights"}


def attack(out, *, seed: int = 0, mode: str = "all-targets", **kwargs) -> dict:
    """One attack_folder run of the test images into ``out``."""
    from pixeljax.attack.run import attack_folder

    predict, data = victim_and_data()
    return attack_folder(predict, data, out, spec(seed, mode), victim=VICTIM, progress=False,
                         **kwargs)


def sweep(out, **kwargs) -> tuple[dict, list[dict], dict]:
    """One sweep_folder run of the test images into ``out`` (two images per wave, grid
    0/128/255): its summary, rows and maps (as lists, JSON-friendly)."""
    from pixeljax.runs import results
    from pixeljax.sweep.folder import read_maps, sweep_folder
    from pixeljax.sweep.spec import SweepSpec

    predict, data = victim_and_data()
    summary = sweep_folder(predict, data, out, SweepSpec(levels=(0, 128, 255), first=True)
                           .replace(slots=2, batch_size=50),
                           victim=VICTIM, progress=False, **kwargs)
    maps = {k: v.tolist() for k, v in read_maps(out).items()}
    return summary, results.read_rows(out), maps


def tiny_checkpoint_and_data(out: Path) -> tuple[Path, Path]:
    """A freshly initialised ``tiny`` victim saved as a checkpoint, and the test images as an
    ``.npz`` file labelled with its predictions, for the command line."""
    from pixeljax.models import create_model
    from pixeljax.models.registry import split_for_inference
    from pixeljax.victims.checkpoint import save_victim

    _, data = victim_and_data()
    model = create_model("tiny")
    apply, params = split_for_inference(model)
    labels = np.asarray(apply(params, data.x.astype(np.float32))).argmax(-1)
    np.savez(out / "images.npz", x=data.x, y=labels)
    save_victim(out / "tiny", model, {"architecture": "tiny", "num_classes": 10,
                                      "image_shape": list(data.x.shape[1:])})
    return out / "tiny", out / "images.npz"


def _devices(out: Path) -> dict:
    """The 8-device checks: an attack run on 8 devices, the bench, a device count too many."""
    import contextlib
    import io

    import jax

    from pixeljax.attack.api import pixel_attack
    from pixeljax.cli import main as cli
    from pixeljax.errors import PixeljaxError
    from pixeljax.runs import results

    report = {"device_count": jax.local_device_count()}
    report["summary"] = attack(out / "folder", mode="all-targets", devices=8)
    report["rows"] = results.read_rows(out / "folder")
    report["sweep_summary"], report["sweep_rows"], report["sweep_maps"] = sweep(
        out / "sweep", devices=8)
    predict, data = victim_and_data()
    try:
        pixel_attack(predict, data.x, data.y, key=jax.random.key(0), devices=9, popsize=8)
        report["nine"] = "no error"
    except PixeljaxError as e:
        report["nine"] = str(e)
    checkpoint, images = tiny_checkpoint_and_data(out)
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        report["bench_status"] = cli(["bench", "--model", "tiny", "--checkpoint", str(checkpoint),
                                      "--data", str(images), "--devices", "1,2,4,8", "--json",
                                      "--images", "1", "--slots", "1", "--popsize", "8",
                                      "--maxiter", "2", "--batch-size", "8"])
    report["bench"] = json.loads(stdout.getvalue())
    return report


def main(argv: list[str]) -> int:
    mode, out = argv[0], Path(argv[1])
    if mode == "devices":
        print(json.dumps(_devices(out)))
        return 0
    if mode == "worker":
        from pixeljax.errors import PixeljaxError
        from pixeljax.runtime import distributed

        address, n, i = argv[2], int(argv[3]), int(argv[4])
        seed = int(argv[5]) if len(argv) > 5 else 0
        try:
            distributed.initialize(address, n, i, timeout=60)
            print(json.dumps(attack(out, seed=seed, mode="all-targets")))
        except PixeljaxError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        return 0
    raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
