"""The training loop for victim networks: SGD with Nesterov momentum, warm-up and cosine decay,
standard augmentation, per-epoch test evaluation, a JSON-lines metrics log and resumable orbax
checkpoints.

Resuming is exact: data order and augmentation are pure functions of (seed, epoch, step), and
checkpoints hold the model, the optimiser and the epoch's running meters, so a killed run
continued from its last checkpoint ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from tqdm.auto import tqdm

from pixeljax._plumbing import locking
from pixeljax.data import ImageSet
from pixeljax.errors import PixeljaxError
from pixeljax.models import Forward, create_model
from pixeljax.training import initial
from pixeljax.training.adversarial import adversarial_batch
from pixeljax.training.augment import augment
from pixeljax.training.config import TrainConfig
from pixeljax.training.workdir import (
    CONFIG,
    DATA,
    METRICS,
    make_optimizer,
    make_schedule,
    read_history,
    zero_meters,
)
from pixeljax.victims.accuracy import accuracy
from pixeljax.victims.checkpoint import TrainingCheckpoints
from pixeljax.victims.checkpoint_ref import SHIPPED


@dataclasses.dataclass
class TrainResult:
    model: nnx.Module  # in eval mode
    steps: int
    epochs: int
    test_accuracy: float
    training_seconds: float
    history: list[dict]


def epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    """The training-set permutation of one epoch, a pure function of (seed, epoch)."""
    return np.random.default_rng([seed, epoch]).permutation(n)


def _check_json(path: Path, expected: dict, what: str) -> None:
    """Writes ``expected`` to a new ``path``, or refuses a work dir whose file differs (a
    starting folder named by another path to the same folder is the same)."""
    if not path.is_file():
        path.write_text(json.dumps(expected, indent=2, sort_keys=True) + "\n")
        return
    try:
        previous = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise PixeljaxError(f"work dir {path.parent}: unreadable {path.name} ({e}); use a new "
                            f"--workdir") from None
    if _same_folder(previous.get("init_from"), expected.get("init_from")):
        previous = {**previous, "init_from": expected["init_from"]}
    if previous != expected:
        changed = sorted(k for k in set(previous) | set(expected)
                         if previous.get(k) != expected.get(k))
        raise PixeljaxError(f"work dir {path.parent} holds a run of {what} (differs in "
                            f"{', '.join(changed)}); use a new --workdir")


def _same_folder(a, b) -> bool:
    """Two ``init_from`` paths that name one local folder (``shipped:`` names are compared as
    they are)."""
    if not (isinstance(a, str) and isinstance(b, str)) or a.startswith(SHIPPED) or \
            b.startswith(SHIPPED):
        return False
    return Path(a).expanduser().resolve() == Path(b).expanduser().resolve()


def _check_workdir(workdir: Path, config: TrainConfig, train_set: ImageSet) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    _check_json(workdir / CONFIG, config.to_dict(), "another recipe")
    _check_json(workdir / DATA, {"train_data": train_set.source, "train_images": len(train_set)},
                "other training data")


def _check_finite(meters: dict, step: int, steps_per_epoch: int) -> None:
    """Stops a run whose loss has become NaN or infinite (before that state is saved)."""
    loss = float(meters["loss_sum"])
    if not math.isfinite(loss):
        epoch = (step - 1) // steps_per_epoch + 1
        raise PixeljaxError(f"training diverged: the loss became {loss} in epoch {epoch} "
                            f"(by step {step}); nothing after the last checkpoint was saved. "
                            f"Train again with a lower --learning-rate and a new --workdir")


def train(config: TrainConfig, train_set: ImageSet, test_set: ImageSet, workdir: str | Path, *,
          progress: bool = True, stop_after: int | None = None) -> TrainResult | None:
    """Trains ``config.model`` and returns the trained model.

    Resumes from the newest checkpoint in ``workdir`` when there is one.

    Args:
      config: the recipe.
      train_set, test_set: training images and the images evaluated after every epoch.
      workdir: checkpoints, ``config.json`` and ``metrics.jsonl`` go here.
      progress: show a progress bar.
      stop_after: stop (without saving) once this many steps are done, as a killed run would;
        returns None then.
    """
    workdir = Path(workdir)
    steps_per_epoch = len(train_set) // config.batch_size
    if steps_per_epoch < 1:
        raise PixeljaxError(f"training set has {len(train_set)} images, fewer than one batch "
                            f"of {config.batch_size}")
    # A fine-tune's starting weights are checked before the work dir is made.
    start = (initial.load_initial(config.init_from, config.model)
             if config.init_from is not None and not (workdir / "checkpoints").is_dir()
             else None)
    with locking.exclusive(workdir, "training work dir"):
        _check_workdir(workdir, config, train_set)
        return _train(config, train_set, test_set, workdir, steps_per_epoch, progress,
                      stop_after, start)


def _train(config: TrainConfig, train_set: ImageSet, test_set: ImageSet, workdir: Path,
           steps_per_epoch: int, progress: bool, stop_after: int | None,
           start: tuple[nnx.Module, dict] | None) -> TrainResult | None:
    total = config.epochs * steps_per_epoch
    model = create_model(config.model, seed=config.seed, num_classes=train_set.num_classes)
    model.eval()
    eval_graph = nnx.graphdef(model)
    model.train()
    train_graph, state = nnx.split(model)
    tx = make_optimizer(config, steps_per_epoch)
    schedule = make_schedule(config, steps_per_epoch)
    opt_state = tx.init(nnx.state(model, nnx.Param))
    meters = zero_meters()
    aug_root = jax.random.fold_in(jax.random.key(config.seed), 1)
    adversarial_root = jax.random.fold_in(jax.random.key(config.seed), 2)
    adversarial = config.adversarial_images

    @jax.jit
    def augmented(images, step):
        return augment(jax.random.fold_in(aug_root, step), images,
                       padding=config.crop_padding, flip=config.flip)

    def batch_of(state, images, labels, step):
        """The step's images: augmented, then (adversarial training) the first ones replaced by
        one-pixel adversarial versions against the current weights."""
        images = augmented(images, step)
        return adversarial_batch(
            config.adversarial, jax.random.fold_in(adversarial_root, step), images, labels,
            adversarial, jax.tree_util.Partial(Forward(eval_graph), state),
            popsize=config.adversarial_popsize, generations=config.adversarial_generations)

    @jax.jit
    def train_step(state, opt_state, meters, images, labels, step):
        if not adversarial:  # else batch_of augmented them
            images = augmented(images, step)
        model = nnx.merge(train_graph, state)
        targets = optax.smooth_labels(jax.nn.one_hot(labels, train_set.num_classes),
                                      config.label_smoothing)

        def loss_fn(model):
            logits = model(images)
            return optax.softmax_cross_entropy(logits, targets).mean(), logits

        (loss, logits), grads = nnx.value_and_grad(loss_fn, has_aux=True)(model)
        params = nnx.state(model, nnx.Param)
        updates, opt_state = tx.update(grads, opt_state, params)
        nnx.update(model, optax.apply_updates(params, updates))
        n = labels.shape[0]
        meters = {**meters, "loss_sum": meters["loss_sum"] + loss * n,
                  "correct": meters["correct"] + jnp.sum(logits.argmax(-1) == labels),
                  "count": meters["count"] + n}
        return nnx.state(model), opt_state, meters

    def eval_apply(state, images):
        return nnx.merge(eval_graph, state)(images)

    checkpoints = TrainingCheckpoints(workdir)
    step = 0
    try:
        latest, restored = checkpoints.restore_latest(
            {"state": state, "opt_state": opt_state, "meters": meters}, set_aside=True)
    except BaseException:
        checkpoints.close()
        raise
    if latest is not None:
        state, opt_state, meters, step = (restored["state"], restored["opt_state"],
                                          restored["meters"], latest)
    elif config.init_from is not None:  # fine-tuning: the weights of another run
        start_model, lineage = start or initial.load_initial(config.init_from, config.model)
        model = nnx.merge(train_graph, state)
        nnx.update(model, nnx.state(start_model))
        state = nnx.state(model)
        initial.record(workdir, lineage)
    history = read_history(workdir, step, repair=True)
    bar = tqdm(total=total, initial=step, disable=not progress, unit="step",
               desc=f"train {config.model}")
    started = time.perf_counter()
    seconds_before = float(meters["seconds"])
    try:
        while step < total:
            epoch, i = divmod(step, steps_per_epoch)
            order = epoch_order(config.seed, epoch, len(train_set))
            batch = order[i * config.batch_size:(i + 1) * config.batch_size]
            images, labels = train_set.x[batch], train_set.y[batch]
            if adversarial:
                images = batch_of(state, images, labels, step)
            state, opt_state, meters = train_step(state, opt_state, meters, images, labels,
                                                  step)
            step += 1
            bar.update(1)
            if stop_after is not None and step >= stop_after:
                return None
            end_of_epoch = step % steps_per_epoch == 0
            if end_of_epoch or step % config.checkpoint_every == 0:
                _check_finite(meters, step, steps_per_epoch)
            if end_of_epoch:
                test_acc = accuracy(eval_apply, state, test_set.x, test_set.y,
                                    batch_size=config.eval_batch_size)
                count = int(meters["count"])
                line = {"epoch": epoch + 1, "step": step,
                        "train_loss": float(meters["loss_sum"]) / count,
                        "train_accuracy": int(meters["correct"]) / count,
                        "test_accuracy": test_acc,
                        "learning_rate": float(schedule(step)),
                        "elapsed_seconds": seconds_before + time.perf_counter() - started}
                history.append(line)
                with open(workdir / METRICS, "a") as f:
                    f.write(json.dumps(line) + "\n")
                bar.set_postfix(loss=f"{line['train_loss']:.3f}", test=f"{test_acc:.4f}")
                meters = {**zero_meters(), "seconds": meters["seconds"]}
            if end_of_epoch or step % config.checkpoint_every == 0:
                elapsed = seconds_before + time.perf_counter() - started
                meters = {**meters, "seconds": jnp.asarray(elapsed, meters["seconds"].dtype)}
                checkpoints.save(step, {"state": state, "opt_state": opt_state,
                                        "meters": meters})
    finally:
        bar.close()
        checkpoints.close()
    nnx.update(model, state)
    model.eval()
    final = history[-1]["test_accuracy"] if history else float("nan")
    return TrainResult(model=model, steps=step, epochs=config.epochs, test_accuracy=final,
                       training_seconds=float(meters["seconds"]), history=history)
