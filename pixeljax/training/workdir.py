"""A training work dir as it lies on disk: its recipe (``config.json``), its training data
(``data.json``), its metrics log and its newest checkpoint restored as a model; and the
optimiser every run of a recipe builds (so a restore rebuilds the same state structure)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from pixeljax._plumbing.files import write_atomic
from pixeljax._plumbing.notices import warn
from pixeljax.errors import PixeljaxError
from pixeljax.models import create_model
from pixeljax.training.config import TrainConfig
from pixeljax.victims.checkpoint import TrainingCheckpoints

METRICS = "metrics.jsonl"
CONFIG = "config.json"
DATA = "data.json"


def make_schedule(config: TrainConfig, steps_per_epoch: int) -> optax.Schedule:
    """Linear warm-up to the peak learning rate, then cosine decay to zero at the last step."""
    total = config.epochs * steps_per_epoch
    warmup = min(max(1, int(config.warmup_epochs * steps_per_epoch)), total - 1) if total > 1 else 0
    return optax.warmup_cosine_decay_schedule(0.0, config.learning_rate, warmup,
                                              max(total, warmup + 1), end_value=0.0)


def make_optimizer(config: TrainConfig, steps_per_epoch: int) -> optax.GradientTransformation:
    schedule = make_schedule(config, steps_per_epoch)
    kernels_only = lambda params: jax.tree.map(lambda p: p.ndim > 1, params)  # noqa: E731
    return optax.chain(
        optax.add_decayed_weights(config.weight_decay, mask=kernels_only),
        optax.sgd(schedule, momentum=config.momentum, nesterov=True),
    )


def zero_meters():
    return {"loss_sum": jnp.zeros((), jnp.float32), "correct": jnp.zeros((), jnp.int32),
            "count": jnp.zeros((), jnp.int32), "seconds": jnp.zeros((), jnp.float64)
            if jax.config.jax_enable_x64 else jnp.zeros((), jnp.float32)}


STAGE = "stage-"  # a schedule's stages train in WORKDIR/stage-1, stage-2, ...


def last_stage(workdir: str | Path) -> Path:
    """The work dir itself, or for a schedule's work dir (no run of its own, stages below it)
    its last stage's, so that a schedule's folder exports and fine-tunes like one run."""
    workdir = Path(workdir)
    stages = sorted((p for p in workdir.glob(f"{STAGE}*")
                     if p.name[len(STAGE):].isdigit() and (p / CONFIG).is_file()),
                    key=lambda p: int(p.name[len(STAGE):]))
    return stages[-1] if stages and not (workdir / CONFIG).is_file() else workdir


def training_data(workdir: str | Path) -> dict:
    """Where a work dir's training images came from (``train_data``, ``train_images``)."""
    path = last_stage(workdir) / DATA
    return json.loads(path.read_text()) if path.is_file() else {}


def _parse_metrics(path: Path) -> tuple[list[dict], bool]:
    """The metric lines of ``path`` and whether its last line was cut off (a kill in mid-write:
    dropped with a warning). A corrupt line before the last is an error."""
    lines = path.read_text().splitlines(keepends=True)
    parsed, cut = [], False
    for i, line in enumerate(lines):
        try:
            if not line.endswith("\n"):
                raise ValueError("incomplete line")
            if not line.strip():
                continue
            entry = json.loads(line)
            if not isinstance(entry, dict) or not isinstance(entry.get("step"), int):
                raise ValueError("not a metrics record with a 'step'")
        except ValueError as e:
            if i < len(lines) - 1:
                raise PixeljaxError(f"{path}: line {i + 1} is corrupt ({e}); fix or delete "
                                    f"that line") from None
            warn(f"{path}: dropping its cut-off last line ({line.strip()[:60]!r})")
            cut = True
            continue
        parsed.append(entry)
    return parsed, cut


def read_history(workdir: Path, upto_step: int, *, repair: bool = False) -> list[dict]:
    """Metric lines up to ``upto_step``. Later ones (written after the last checkpoint) and a
    cut-off last line are ignored, and with ``repair`` removed from the file."""
    path = workdir / METRICS
    if not path.is_file():
        return []
    lines, cut = _parse_metrics(path)
    kept = [line for line in lines if line["step"] <= upto_step]
    if repair and (cut or len(kept) != len(lines)):
        write_atomic(path, "".join(json.dumps(line) + "\n" for line in kept))
    return kept


def read_config(workdir: str | Path) -> TrainConfig:
    """The recipe a training work dir was made with.

    Raises:
      PixeljaxError: the folder is not a training work dir (e.g. an attack results folder).
    """
    workdir = last_stage(workdir)
    path = workdir / CONFIG
    if not path.is_file():
        raise PixeljaxError(f"{workdir} is not a training work dir (no {CONFIG})")
    try:
        recorded = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise PixeljaxError(f"{path} is unreadable ({e})") from None
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    if not isinstance(recorded, dict) or "model" not in recorded or set(recorded) - fields:
        raise PixeljaxError(f"{workdir} is not a training work dir: its {CONFIG} is not a "
                            f"training recipe (is it an attack results folder?)")
    return TrainConfig(**recorded)


def restore_model(workdir: str | Path, num_classes: int = 10) -> tuple[nnx.Module, TrainConfig,
                                                                        int, list[dict], float]:
    """The model of the newest checkpoint in a training work dir, in eval mode.

    Returns ``(model, config, step, history, training_seconds)``.
    """
    workdir = last_stage(workdir)
    config = read_config(workdir)
    if not (workdir / "checkpoints").is_dir():
        raise PixeljaxError(f"{workdir} holds no training checkpoint yet")
    model = create_model(config.model, seed=config.seed, num_classes=num_classes)
    model.train()
    state = nnx.state(model)
    opt_state = make_optimizer(config, 1).init(nnx.state(model, nnx.Param))  # structure only
    checkpoints = TrainingCheckpoints(workdir)
    try:
        step, restored = checkpoints.restore_latest({"state": state, "opt_state": opt_state,
                                                     "meters": zero_meters()})
        if step is None:
            raise PixeljaxError(f"{workdir} holds no training checkpoint yet")
    finally:
        checkpoints.close()
    nnx.update(model, restored["state"])
    model.eval()
    return (model, config, step, read_history(workdir, step),
            float(restored["meters"]["seconds"]))
