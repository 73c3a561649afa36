"""Victims shared by the attack-engine tests (test_engine.py, test_attack_cli.py).

Compiling the engine for a network takes seconds on a CPU, and jit caches by the model
function's identity, so both test files use one loaded ``tiny`` victim (one ``apply``) and one
engine configuration; then the engine compiles once for the whole test session.
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from pixeljax.data import load_sample
from pixeljax.models import create_model
from pixeljax.victims.accuracy import predict_logits
from pixeljax.victims.checkpoint import load_victim, save_victim
from pixeljax.victims.loaded import LoadedVictim

# The engine sizes of every tiny-victim run: one compilation for the session.
TINY_ENGINE = dict(popsize=8, maxiter=3, slots=4, batch_size=16)

_cache: dict[str, object] = {}


def tiny_victim(tmp_path_factory) -> tuple[Path, LoadedVictim]:
    """An untrained ``tiny`` network exported as a checkpoint, and the victim loaded from it."""
    if "victim" not in _cache:
        folder = tmp_path_factory.mktemp("victim") / "tiny"
        save_victim(folder, create_model("tiny", seed=0),
                    {"architecture": "tiny", "num_classes": 10, "note": "untrained, for tests"})
        _cache["victim"] = (folder, load_victim("tiny", folder))
    return _cache["victim"]


def clean_logits(victim: LoadedVictim, images: np.ndarray) -> np.ndarray:
    return predict_logits(victim.apply, victim.params, images,
                          batch_size=TINY_ENGINE["batch_size"])


def boundary_sample(victim: LoadedVictim, n: int = 12, wrong: int = 2):
    """``n`` shipped sample images on which the untrained victim is least sure, labelled with
    its own predictions (so one-pixel attacks on them often succeed), except the last ``wrong``,
    whose labels are wrong (so they are skipped). Returns ``(x, y, index)``."""
    sample = load_sample()
    logits = clean_logits(victim, sample.x)
    top2 = np.sort(logits, axis=-1)[:, -2:]
    order = np.sort(np.argsort(top2[:, 1] - top2[:, 0])[:n])
    y = logits[order].argmax(-1).astype(np.int64)
    y[n - wrong:] = (y[n - wrong:] + 1) % 10
    return sample.x[order], y, sample.index[order]


def boundary_file(victim: LoadedVictim, folder: Path, n: int = 12) -> Path:
    """:func:`boundary_sample` as an ``.npz`` that ``--data`` reads, in ``folder``."""
    x, y, index = boundary_sample(victim, n)
    path = folder / "boundary.npz"
    np.savez(path, x=x, y=y, index=index)
    return path


# -- a hand-written model whose behaviour is set by its parameters -------------------------------

NUM_TOY_CLASSES = 4
TOY_TRACES: list[tuple[int, ...]] = []  # the image shape of every trace of toy_apply


def toy_apply(params: dict, images: jax.Array) -> jax.Array:
    """Four classes over pixel-space RGB images (B, H, W, 3).

    Class 0 has the constant logit ``base``. Class 1 + k grows with the most saturated pixel of
    channel k (``colour`` gain: how far it exceeds the mean of the other channels), and class 1
    also with the largest colour change from ``ref`` at any pixel (``change`` gain). So with
    ``change`` large, any changed pixel flips a uniform ``ref`` image to class 1; with
    ``colour`` alone, a target k is reached by painting one pixel in pure channel k - 1.
    """
    TOY_TRACES.append(images.shape)  # Python code: runs when JAX traces, not when it runs
    x = jnp.asarray(images, jnp.float32).reshape(images.shape[0], -1, 3) / 255.0  # (B, HW, 3)
    excess = x - (jnp.sum(x, -1, keepdims=True) - x) / 2
    colour = params["colour"] * jnp.max(excess, axis=1)                          # (B, 3)
    change = params["change"] * jnp.max(jnp.sum(jnp.abs(x - params["ref"] / 255.0), -1), 1)
    base = jnp.broadcast_to(params["base"], (x.shape[0], 1))
    return jnp.concatenate([base, colour[:, :1] + change[:, None], colour[:, 1:]], axis=1)


def toy_model(*, base=3.0, colour=12.0, change=0.0, ref=(100.0, 100.0, 100.0)):
    params = {"base": jnp.float32(base), "colour": jnp.float32(colour),
              "change": jnp.float32(change), "ref": jnp.asarray(ref, jnp.float32)}
    return jax.tree_util.Partial(toy_apply, params)


def kill_after_first_yield(monkeypatch, module, name: str):
    """Makes the generator ``module.name`` stop with Ctrl-C once its first item has been used
    (as a killed run would); returns the real one to put back."""
    real = getattr(module, name)

    def killed_after_first(*args, **kwargs):
        for item in real(*args, **kwargs):
            yield item
            raise KeyboardInterrupt

    monkeypatch.setattr(module, name, killed_after_first)
    return real


def kill_after_first_harvest(monkeypatch):
    """Makes the engine stop with Ctrl-C once the first finished attacks are written (as a
    killed run would); returns the real ``stream`` to put back."""
    import pixeljax.attack.pipeline as pipeline

    return kill_after_first_yield(monkeypatch, pipeline, "stream")


def published_in_readme(out: Path, folder: Path, name: str) -> list[str]:
    """The table of the suite run in ``out`` once published as ``folder/pub/name`` with a
    README that has its block (checked to hold that very table)."""
    from pixeljax.evaluation.publish import publish, published_table
    from pixeljax.reporting.readme_blocks import readme_block

    readme = folder / "README.md"
    readme.write_text(f"<!-- published:{name} -->\n<!-- /published:{name} -->\n")
    publish(out, folder / "pub" / name, command="pixeljax evaluate x", readme=readme)
    shown = published_table(folder / "pub" / name)
    assert readme_block(readme.read_text(), name) == "\n".join(shown)
    return shown
