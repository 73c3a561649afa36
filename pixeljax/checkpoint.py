"""Checkpoint I/O: the one module that talks to orbax.

Two kinds of checkpoint live here:
  * a *victim* (``checkpoints/NAME/``): final weights plus ``metadata.json`` (architecture,
    parameter count, data, epochs, accuracy), loaded by name with :func:`load_victim`;
  * *training* checkpoints in a work dir, through an orbax ``CheckpointManager``
    (:class:`TrainingCheckpoints`), so a killed run resumes where it stopped.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp
from flax import nnx

from pixeljax.errors import CheckpointError
from pixeljax.models import create_model, model_names, split_for_inference

METADATA = "metadata.json"
WEIGHTS = "weights"
PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHIPPED = PROJECT_ROOT / "checkpoints"


@dataclasses.dataclass(frozen=True)
class Victim:
    """A loaded victim network.

    Attributes:
      name: the registry name of its architecture.
      model: the Flax NNX module, in eval mode.
      apply: pure ``apply(params, images) -> logits``.
      params: every variable of the model (weights and batch-norm statistics).
      metadata: the checkpoint's metadata.
    """

    name: str
    model: nnx.Module
    apply: Any
    params: Any
    metadata: dict

    @property
    def predict(self) -> jax.tree_util.Partial:
        """``predict(images) -> logits`` with the weights bound; a pytree, so it can be passed
        to jitted functions without baking the weights into the program."""
        return jax.tree_util.Partial(self.apply, self.params)


def shipped_checkpoint(name: str) -> Path:
    """Where the project ships the trained victim ``name``."""
    return SHIPPED / name


def _abstract(tree):
    return jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)


def _local_abstract(tree):
    """Shapes and dtypes to restore a victim into, on this process's first device: in a
    multi-process run each process restores its own copy (not the saving process's devices)."""
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device), tree)


def _reader() -> ocp.StandardCheckpointer:
    """A checkpointer for reading a victim within this process alone (no barriers with the
    other processes of a multi-process run, which each read the victim by themselves)."""
    if jax.process_count() == 1:
        return ocp.StandardCheckpointer()
    return ocp.StandardCheckpointer(multiprocessing_options=ocp.options.MultiprocessingOptions(
        primary_host=jax.process_index(), active_processes={jax.process_index()}))


def save_victim(directory: str | Path, model: nnx.Module, metadata: dict) -> Path:
    """Writes a victim's weights and metadata; replaces ``directory`` atomically."""
    directory = Path(directory).absolute()
    tmp = directory.with_name(directory.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save(tmp / WEIGHTS, nnx.to_pure_dict(nnx.state(model)))
    checkpointer.wait_until_finished()
    for marker in (tmp / WEIGHTS).glob("commit_success*"):  # orbax writes the absolute path
        marker.write_text("Checkpoint commit was successful.\n")
    (tmp / METADATA).write_text(json.dumps(metadata, indent=2, sort_keys=True) + "\n")
    if directory.exists():
        shutil.rmtree(directory)
    tmp.rename(directory)
    return directory


def read_metadata(directory: str | Path) -> dict:
    directory = Path(directory)
    path = directory / METADATA
    if not directory.is_dir():
        raise CheckpointError(f"checkpoint {directory} does not exist")
    if not path.is_file():
        raise CheckpointError(f"{directory} is not a pixeljax checkpoint: no {METADATA}")
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as e:  # unreadable, not UTF-8 or not JSON
        raise CheckpointError(f"{path}: corrupt metadata ({e})") from None
    if not isinstance(meta, dict) or "architecture" not in meta:
        raise CheckpointError(f"{path}: metadata has no 'architecture' field")
    return meta


def _describe(error: BaseException) -> str:
    """The innermost cause of an orbax/tensorstore error, on one line."""
    seen = set()
    while (error.__cause__ or error.__context__) is not None and id(error) not in seen:
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    text = str(error).splitlines()[0][:300] if str(error) else ""
    return f"{type(error).__name__}: {text}"


def _shapes(tree) -> dict[str, tuple[int, ...] | None]:
    """``{"layers.0.conv.kernel": shape}`` for every leaf of a nested dict."""
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {".".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path):
            getattr(leaf, "shape", None) and tuple(leaf.shape) for path, leaf in leaves}


def _check_weight_shapes(directory: Path, target: dict, name: str) -> None:
    """Compares the stored weights' names and shapes with ``target`` before restoring, so a
    checkpoint of another network is one clear error rather than orbax's many."""
    weights = (directory / WEIGHTS).absolute()
    if not weights.is_dir():
        raise CheckpointError(f"checkpoint {directory} has no {WEIGHTS}/ folder")
    try:
        stored = _shapes(_reader().metadata(weights).item_metadata)
    except Exception as e:  # damaged orbax metadata
        raise CheckpointError(f"checkpoint {directory}: cannot read {weights} "
                              f"({_describe(e)})") from None
    if not stored:
        raise CheckpointError(f"checkpoint {directory}: {weights} holds no readable weights "
                              f"(damaged or incomplete orbax checkpoint)")
    expected = _shapes(target)
    missing = sorted(expected.keys() - stored.keys())
    extra = sorted(stored.keys() - expected.keys())
    if missing or extra:
        raise CheckpointError(f"checkpoint {directory}: its weights do not fit a {name!r} network "
                              f"(missing {', '.join(missing[:3]) or 'none'}; unexpected "
                              f"{', '.join(extra[:3]) or 'none'})")
    wrong = [k for k in sorted(expected) if stored[k] != expected[k]]
    if wrong:
        raise CheckpointError(f"checkpoint {directory}: weight {wrong[0]} has shape "
                              f"{stored[wrong[0]]}, expected {expected[wrong[0]]} for a {name!r} "
                              f"network ({len(wrong)} weights of the wrong shape)")


def load_victim(name: str, checkpoint: str | Path | None = None) -> Victim:
    """Loads a trained victim by architecture name.

    Args:
      name: registry name (``allconv``, ``nin``, ``vgg16``, ``tiny``, ...).
      checkpoint: a checkpoint folder; defaults to the shipped ``checkpoints/NAME``.

    Raises:
      CheckpointError: missing or corrupt checkpoint, or one of another architecture.
      PixeljaxError: unknown model name.
    """
    if name not in model_names():
        create_model(name)  # raises the unknown-name error before any file is read
    directory = Path(checkpoint) if checkpoint is not None else shipped_checkpoint(name)
    if checkpoint is None and not directory.is_dir():
        raise CheckpointError(f"no shipped checkpoint for {name!r} at {directory}; pass a "
                              f"checkpoint folder, or train one with 'pixeljax train {name} "
                              f"--data SPEC --workdir DIR --export {directory}'")
    meta = read_metadata(directory)
    if meta["architecture"] != name:
        raise CheckpointError(f"checkpoint {directory} holds a {meta['architecture']!r} "
                              f"network, not {name!r}")
    num_classes = meta.get("num_classes", 10)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise CheckpointError(f"{directory / METADATA}: num_classes must be a positive integer, "
                              f"got {num_classes!r}")
    # Restore into an abstract model: no random initialisation that the weights overwrite.
    graphdef, state = nnx.split(nnx.eval_shape(lambda: create_model(name,
                                                                    num_classes=num_classes)))
    target = nnx.to_pure_dict(state)
    _check_weight_shapes(directory, target, name)
    try:
        restored = _reader().restore((directory / WEIGHTS).absolute(), _local_abstract(target))
    except Exception as e:  # orbax/tensorstore raise many kinds for damaged files
        raise CheckpointError(f"checkpoint {directory}: cannot restore {name!r} weights, the "
                              f"weight files are damaged ({_describe(e)})") from None
    nnx.replace_by_pure_dict(state, restored)
    model = nnx.merge(graphdef, state)
    apply, params = split_for_inference(model)
    return Victim(name=name, model=model, apply=apply, params=params, metadata=meta)


class TrainingCheckpoints:
    """Training state in ``WORKDIR/checkpoints`` through an orbax ``CheckpointManager``."""

    def __init__(self, workdir: str | Path, max_to_keep: int = 2):
        self.directory = (Path(workdir) / "checkpoints").absolute()
        self.manager = ocp.CheckpointManager(
            self.directory, options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep,
                                                                 create=True))

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def save(self, step: int, state: Any) -> None:
        self.manager.save(step, args=ocp.args.StandardSave(state))
        self.manager.wait_until_finished()

    def restore(self, step: int, like: Any) -> Any:
        try:
            return self.manager.restore(step, args=ocp.args.StandardRestore(_abstract(like)))
        except Exception as e:
            raise CheckpointError(f"training checkpoint {self.directory}/{step} cannot be "
                                  f"restored ({type(e).__name__}: {str(e)[:300]}); was the work "
                                  f"dir made with another recipe?") from None

    def close(self) -> None:
        self.manager.close()
