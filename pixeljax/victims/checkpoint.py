"""Checkpoint I/O: the one module that talks to orbax.

Two kinds of checkpoint live here:
  * a *victim* (``checkpoints/NAME/``): final weights plus ``metadata.json`` (architecture,
    parameter count, data, epochs, accuracy, the storage dtype and a sha256 digest of every
    weight file), loaded by name with :func:`load_victim`. Writing one never deletes anything
    but an older complete victim at the same place;
  * *training* checkpoints in a work dir, through an orbax ``CheckpointManager``
    (:class:`TrainingCheckpoints`), so a killed run resumes where it stopped.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import signal
import tempfile
import threading
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from flax import nnx

from pixeljax._plumbing.files import write_atomic
from pixeljax._plumbing.notices import note, warn
from pixeljax._shipped import shipped_folder
from pixeljax.errors import CheckpointError, PixeljaxError
from pixeljax.models import create_model, model_names, split_for_inference, user
from pixeljax.victims import onnx as onnx_victims
from pixeljax.victims.loaded import DIGESTS, LoadedVictim, weights_sha256

METADATA = "metadata.json"
WEIGHTS = "weights"
DTYPES = ("float32", "bfloat16", "float16")  # storage dtypes of a victim's weights
DATA_FILE_BYTES = 8 << 20  # weights are split into data files of about this size


def shipped_checkpoint(name: str) -> Path:
    """Where the project ships the trained victim ``name`` (``checkpoints/NAME`` of the
    repository, or its copy inside an installed wheel)."""
    return shipped_folder("checkpoints") / name


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


def weight_digests(weights: str | Path) -> dict[str, str]:
    """``{relative path: sha256}`` of every file under a victim's ``weights/`` folder."""
    weights = Path(weights)
    digests = {}
    for path in sorted(p for p in weights.rglob("*") if p.is_file()):
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        digests[path.relative_to(weights).as_posix()] = h.hexdigest()
    return digests


def digest_mismatch(recorded: dict[str, str], folder: Path) -> tuple[str, bool] | None:
    """The first file of ``recorded`` (``{relative path: sha256}``) that ``folder`` lacks or
    holds with other content, as ``(name, missing)``; None when every file matches."""
    actual = weight_digests(folder)
    for name, digest in sorted(recorded.items()):
        if actual.get(name) != digest:
            return name, name not in actual
    return None


def _is_victim(directory: Path) -> bool:
    """A complete victim written by pixeljax: its metadata, its weights and nothing else."""
    try:
        read_metadata(directory)
    except CheckpointError:
        return False
    return ((directory / WEIGHTS).is_dir()
            and {p.name for p in directory.iterdir()} <= {METADATA, WEIGHTS})


def check_replaceable(directory: str | Path) -> Path:
    """Where a victim may be written: nothing there, an empty folder, or a complete victim
    (which is replaced). Returns the absolute path.

    Raises:
      CheckpointError: anything else is there (never deleted or overwritten), or the path is
        the current directory or one of its parents.
    """
    directory = Path(os.path.abspath(directory))
    if directory == Path(directory.anchor) or Path.cwd().is_relative_to(directory):
        raise CheckpointError(f"refusing to write a victim to {directory}: it is the current "
                              f"directory or one of its parents; give a new folder")
    if directory.is_symlink() or (directory.exists() and not directory.is_dir()):
        raise CheckpointError(f"refusing to write a victim to {directory}: something other than "
                              f"a folder is there; move it away or give a new folder")
    if directory.is_dir() and any(directory.iterdir()) and not _is_victim(directory):
        raise CheckpointError(f"refusing to write a victim to {directory}: it holds files that "
                              f"are not a pixeljax victim; move them away or give a new folder")
    return directory


def _stored(model: nnx.Module, dtype: str) -> dict:
    """The model's variables as saved: kernels cast to ``dtype``; per-channel vectors (biases,
    batch-norm scales, offsets and statistics) stay float32, as they are few and accuracy
    needs them."""
    weights = set(_shapes(nnx.to_pure_dict(nnx.state(model, nnx.Param))))
    tree = nnx.to_pure_dict(nnx.state(model))
    flat, treedef = jax.tree_util.tree_flatten_with_path(tree)
    return jax.tree_util.tree_unflatten(treedef, [
        jnp.asarray(leaf, dtype) if _dotted(path) in weights and _is_kernel(leaf) else leaf
        for path, leaf in flat])


def _is_kernel(leaf) -> bool:
    return jnp.ndim(leaf) >= 2


def as_stored(model: nnx.Module, dtype: str) -> nnx.Module:
    """A copy of ``model`` whose kernels are rounded to ``dtype`` as :func:`save_victim` stores
    them (and kept float32, as :func:`load_victim` reads them back)."""
    copy = nnx.clone(model)
    if dtype != "float32":
        params = nnx.state(copy, nnx.Param)
        nnx.update(copy, jax.tree.map(
            lambda x: jnp.asarray(jnp.asarray(x, dtype), x.dtype) if _is_kernel(x) else x,
            params))
    return copy


def save_victim(directory: str | Path, model: nnx.Module, metadata: dict, *,
                dtype: str = "float32") -> Path:
    """Writes a victim's weights (stored as ``dtype``) and metadata to ``directory``.

    The victim is written to a temporary folder beside ``directory`` and renamed into place; an
    older complete victim there is renamed aside and removed only once the new one is in.
    Nothing else is ever replaced, and a failed write leaves no temporary folder behind.

    Raises:
      CheckpointError: ``directory`` holds something other than a victim (see
        :func:`check_replaceable`), or ``dtype`` is not one of ``DTYPES``.
    """
    if dtype not in DTYPES:
        raise CheckpointError(f"storage dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    directory = check_replaceable(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", suffix=".tmp",
                                dir=directory.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # a victim folder, not mkdtemp's private one
    old = None
    try:
        ocp.PyTreeCheckpointer().save(tmp / WEIGHTS, args=ocp.args.PyTreeSave(  # synchronous
            _stored(model, dtype), ocdbt_target_data_file_size=DATA_FILE_BYTES))
        for marker in (tmp / WEIGHTS).glob("commit_success*"):  # orbax writes the absolute path
            marker.write_text("Checkpoint commit was successful.\n")
        metadata = {**metadata, "dtype": dtype, DIGESTS: weight_digests(tmp / WEIGHTS)}
        (tmp / METADATA).write_text(json.dumps(metadata, indent=2, sort_keys=True) + "\n")
        check_replaceable(directory)  # again: something may have appeared meanwhile
        if directory.is_dir() and any(directory.iterdir()):
            old = Path(tempfile.mkdtemp(prefix=f".{directory.name}.old.", suffix=".tmp",
                                        dir=directory.parent))
            os.replace(directory, old / directory.name)
        elif directory.is_dir():
            directory.rmdir()  # empty
        try:
            os.rename(tmp, directory)
        except OSError:
            if old is not None:  # put the old victim back
                os.replace(old / directory.name, directory)
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
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


def _dotted(path) -> str:
    return ".".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path)


def _shapes(tree) -> dict[str, tuple[int, ...] | None]:
    """``{"layers.0.conv.kernel": shape}`` for every leaf of a nested dict."""
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {_dotted(path): getattr(leaf, "shape", None) and tuple(leaf.shape)
            for path, leaf in leaves}


def _verify_digests(directory: Path, meta: dict) -> None:
    """Checks every weight file against the digest the metadata records (checkpoints written
    before digests were recorded have none and are not checked)."""
    recorded = meta.get(DIGESTS)
    if recorded is None:
        return
    if not isinstance(recorded, dict):
        raise CheckpointError(f"{directory / METADATA}: {DIGESTS} must map weight files to "
                              f"sha256 digests")
    weights = directory / WEIGHTS
    if not weights.is_dir():
        raise CheckpointError(f"checkpoint {directory} has no {WEIGHTS}/ folder")
    mismatch = digest_mismatch(recorded, weights)
    if mismatch is not None:
        name, missing = mismatch
        raise CheckpointError(
            f"checkpoint {directory}: weight file {WEIGHTS}/{name} is missing; the checkpoint "
            f"is damaged" if missing else
            f"checkpoint {directory}: weight file {WEIGHTS}/{name} is damaged (its sha256 "
            f"differs from the one in {METADATA})")


def _check_orbax_files(directory: Path) -> None:
    """Checks that orbax's index files are there before orbax reads the folder (a missing one
    makes its reader threads fail noisily)."""
    weights = (directory / WEIGHTS).absolute()
    needed = [weights / "_METADATA"]
    if any(weights.glob("ocdbt.process_*")):
        needed.append(weights / "manifest.ocdbt")
    for path in needed:
        if not path.is_file():
            raise CheckpointError(f"checkpoint {directory}: {weights} holds no readable weights "
                                  f"({path.name} is missing: a damaged or incomplete orbax "
                                  f"checkpoint)")


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


def load_victim(name: str, checkpoint: str | Path | None = None, *, input_scale=None,
                outputs=None, layout=None) -> LoadedVictim:
    """Loads a trained victim by architecture name.

    Args:
      name: registry name (``allconv``, ``nin``, ``vgg16``, ``tiny``, ...), a user's model
        factory ``module.path:factory`` (see :mod:`pixeljax.models.user`), or an ONNX file
        ``path/to/model.onnx`` (see :mod:`pixeljax.victims.onnx`).
      checkpoint: a checkpoint folder; defaults to the shipped ``checkpoints/NAME`` (a user's
        model: a victim folder or a plain orbax checkpoint of its state, required).

      input_scale, outputs: a user's model's input convention and what it returns, instead of
        what it declares (see :mod:`pixeljax.models.user`).
      layout: an ONNX model's input layout, ``"nchw"`` or ``"nhwc"`` (default: detected).

    Raises:
      CheckpointError: missing or corrupt checkpoint, or one of another architecture.
      PixeljaxError: unknown model name.
    """
    given = (input_scale, outputs)
    if onnx_victims.is_onnx(name):
        if checkpoint is not None and Path(checkpoint).absolute() != Path(name).absolute():
            raise PixeljaxError(f"{name}: an ONNX file holds its own weights: no --checkpoint")
        return onnx_victims.load_onnx(name, layout=layout, input_scale=input_scale,
                                      outputs=outputs)
    if layout is not None:
        raise PixeljaxError(f"{name}: --layout is for ONNX models (model.onnx)")
    if user.is_predict(name):
        return _load_predict(name, given)
    if user.is_reference(name):
        return _load_user_victim(name, checkpoint, given)
    if given != (None, None):
        raise PixeljaxError(f"{name} is a registered victim, which takes pixel values and "
                            f"returns logits: --input-scale and --outputs are for models of "
                            f"your own")
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
    model = _restore(graphdef, state, directory, name, meta)
    shape = _image_shape(meta, directory)
    if shape is not None:  # travels with the model (and its predict) for the input checks
        model.image_shape = shape
    apply, params = split_for_inference(model)
    return LoadedVictim(name=name, model=model, apply=apply, params=params, metadata=meta,
                        weights_sha256=weights_sha256(meta, params))


def _restore(graphdef, state, directory: Path, name: str, meta: dict) -> nnx.Module:
    """The model of ``graphdef`` with the weights of the victim folder ``directory``."""
    target = nnx.to_pure_dict(state)
    _verify_digests(directory, meta)
    if not (directory / WEIGHTS).is_dir():
        raise CheckpointError(f"checkpoint {directory} has no {WEIGHTS}/ folder")
    _check_orbax_files(directory)
    _check_weight_shapes(directory, target, name)
    try:
        # Weights stored as bfloat16/float16 are read back as the model's float32.
        restored = _reader().restore((directory / WEIGHTS).absolute(), _local_abstract(target))
    except Exception as e:  # orbax/tensorstore raise many kinds for damaged files
        raise CheckpointError(f"checkpoint {directory}: cannot restore {name!r} weights, the "
                              f"weight files are damaged ({_describe(e)})") from None
    restored = jax.tree.map(lambda x, like: jnp.asarray(x, like.dtype), restored, target)
    nnx.replace_by_pure_dict(state, restored)
    return nnx.merge(graphdef, state)


def _load_user_victim(reference: str, checkpoint, given) -> LoadedVictim:
    """A user's model (``module.path:factory``) with the weights of ``checkpoint``."""
    built = user.build(reference)
    if isinstance(built, tuple) or user.is_linen(built):
        return _load_linen(reference, built, checkpoint, given)
    if checkpoint is None:
        raise CheckpointError(f"model {reference}: a model of your own needs --checkpoint, a "
                              f"victim folder ('pixeljax export', save_victim) or an orbax "
                              f"checkpoint of nnx.state(model)")
    directory = Path(checkpoint)
    if not directory.is_dir():
        raise CheckpointError(f"model {reference}: checkpoint {directory} is not a folder")
    model = built
    meta: dict = {}
    if (directory / METADATA).is_file():
        meta = read_metadata(directory)
        graphdef, state = nnx.split(model)
        model = _restore(graphdef, state, directory, reference, meta)
    else:
        model = user.restore_plain(model, directory, reference)
    scale, kind = user.conventions(model, *given)
    # None: the model declares no size (the input checks then leave it to the model).
    model.image_shape = _image_shape(meta, directory) or user.image_shape_of(model)
    apply, params = split_for_inference(model)
    meta = {**meta, "architecture": reference, "input_scale": scale, "outputs": kind}
    return LoadedVictim(name=reference, model=model, apply=user.wrap_apply(apply, scale, kind),
                        params=params, metadata=meta, weights_sha256=weights_sha256(meta, params))


def _load_linen(reference: str, built, checkpoint, given) -> LoadedVictim:
    """A Linen module with its variables (from the factory, or from ``checkpoint``)."""
    module, variables = built if isinstance(built, tuple) else (built, None)
    if checkpoint is not None:  # its variables, over the factory's own when it returns some
        variables = user.restore_variables(Path(checkpoint), reference, like=variables)
    elif variables is None:
        raise CheckpointError(f"model {reference}: the factory returns a Linen module without "
                              f"variables; return (module, variables) or pass --checkpoint, "
                              f"an orbax checkpoint of the variables")
    scale, kind = user.conventions(module, *given)
    model = user.Declared(user.image_shape_of(module))
    meta = {"architecture": reference, "input_scale": scale, "outputs": kind}
    return LoadedVictim(name=reference, model=model,
                        apply=user.wrap_apply(user.LinenApply(module), scale, kind),
                        params=variables, metadata=meta,
                        weights_sha256=weights_sha256(meta, variables))


def _load_predict(name: str, given) -> LoadedVictim:
    """A plain ``predict(images) -> outputs`` with its own weights (``predict:module:fn``),
    declaring ``image_shape``, ``input_scale`` and ``outputs`` as attributes if it likes."""
    reference = name[len(user.PREDICT):]
    function = user.predict_function(reference)
    scale, kind = user.conventions(function, *given)
    model = user.Declared(user.image_shape_of(function))
    meta = {"architecture": name, "input_scale": scale, "outputs": kind}
    return LoadedVictim(name=reference, model=model,
                        apply=user.wrap_apply(user.Called(function), scale, kind), params=(),
                        metadata=meta, weights_sha256=weights_sha256(meta, (), function))


def with_detected_outputs(victim: LoadedVictim, images: np.ndarray) -> LoadedVictim:
    """``victim`` scoring the logarithm of its outputs when they are probabilities (rows that
    are non-negative and sum to 1 on ``images``) and it declared none; never soft-maxed
    twice. Declared logits are taken as such.

    Raises:
      PixeljaxError: declared probabilities that are none on ``images``, or NaN outputs on the
        first of them.
    """
    declared = victim.metadata.get("outputs")
    if not len(images):
        return victim
    out = np.asarray(victim.predict(np.asarray(images[:16], np.float32)))
    bad = np.isnan(out).any(axis=-1) if out.ndim == 2 else ()
    if np.any(bad):
        raise PixeljaxError(f"{victim.name} returns NaN outputs for {int(np.sum(bad))} of the "
                            f"first {len(out)} images")
    if declared == user.LOGITS:
        return victim
    if declared == user.PROBABILITIES:  # scored as their logarithm: exp gives them back
        if not user.looks_like_probabilities(np.exp(out)):
            raise PixeljaxError(f"{victim.name} is declared to return probabilities (--outputs "
                                f"or its outputs attribute), but its outputs on the data are "
                                f"not (negative, or rows that do not sum to 1): declare "
                                f"logits, or nothing")
        return victim
    if not user.looks_like_probabilities(out):
        return victim
    note(f"{victim.name} returns probabilities (its rows sum to 1), not logits: their logarithm "
         f"is scored")
    return dataclasses.replace(
        victim, apply=user.wrap_apply(victim.apply, user.PIXELS, user.PROBABILITIES),
        metadata={**victim.metadata, "outputs": user.PROBABILITIES})


def _image_shape(meta: dict, directory: Path) -> tuple[int, int, int] | None:
    """The metadata's ``image_shape`` (height, width, channels), if it records one."""
    shape = meta.get("image_shape")
    if shape is None:
        return None
    if (not isinstance(shape, (list, tuple)) or len(shape) != 3
            or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape)):
        raise CheckpointError(f"{directory / METADATA}: image_shape must be [height, width, "
                              f"channels], three positive integers, got {shape!r}")
    return tuple(shape)


@contextlib.contextmanager
def _interrupts_deferred():
    """Ctrl-C during the block takes effect when it ends: a checkpoint is never cut in half, and
    orbax never logs the interrupted wait as a failure."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught = []
    previous = signal.signal(signal.SIGINT, lambda *args: caught.append(args))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        raise KeyboardInterrupt


class TrainingCheckpoints:
    """Training state in ``WORKDIR/checkpoints`` through an orbax ``CheckpointManager``."""

    DAMAGED = "damaged-checkpoints"  # WORKDIR/damaged-checkpoints/<step>: set aside on resume
    DIGESTS = "checkpoint-digests"   # WORKDIR/checkpoint-digests/<step>.json: sha256 per file

    def __init__(self, workdir: str | Path, max_to_keep: int = 2):
        self.workdir = Path(workdir).absolute()
        self.directory = self.workdir / "checkpoints"
        self.max_to_keep = max_to_keep
        self.manager = self._open()

    def _open(self) -> ocp.CheckpointManager:
        return ocp.CheckpointManager(
            self.directory, options=ocp.CheckpointManagerOptions(max_to_keep=self.max_to_keep,
                                                                 create=True))

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def save(self, step: int, state: Any) -> None:
        with _interrupts_deferred():
            self.manager.save(step, args=ocp.args.StandardSave(state))
            self.manager.wait_until_finished()
            self._record_digests(step)

    def _record_digests(self, step: int) -> None:
        """Writes the sha256 of every file of checkpoint ``step`` (so a damaged one is found
        before orbax reads it) and drops those of checkpoints orbax has deleted."""
        folder = self.workdir / self.DIGESTS
        folder.mkdir(exist_ok=True)
        write_atomic(folder / f"{step}.json",
                     json.dumps(weight_digests(self.directory / str(step)), indent=1) + "\n")
        kept = {str(s) for s in self.manager.all_steps()}
        for path in folder.glob("*.json"):
            if path.stem not in kept:
                path.unlink()

    def _verify_digests(self, step: int) -> None:
        path = self.workdir / self.DIGESTS / f"{step}.json"
        try:
            recorded = json.loads(path.read_text())
        except (OSError, ValueError):
            return  # killed between the checkpoint and its digests: orbax's own check holds
        mismatch = digest_mismatch(recorded, self.directory / str(step))
        if mismatch is not None:
            name, missing = mismatch
            raise CheckpointError(f"training checkpoint {self.directory / str(step)} is "
                                  f"damaged ({name} {'is missing' if missing else 'differs'} "
                                  f"from its sha256 recorded at save)")

    def restore(self, step: int, like: Any) -> Any:
        path = self.directory / str(step)
        # orbax's reader threads fail noisily on a damaged checkpoint: check what we can first.
        index = [path / "_CHECKPOINT_METADATA", *path.glob("*/_METADATA"),
                 *(p.parent / "manifest.ocdbt" for p in path.glob("*/ocdbt.process_*"))]
        missing = [p.relative_to(path).as_posix() for p in index if not p.is_file()]
        if missing or not any(path.glob("*/_METADATA")):
            raise CheckpointError(f"training checkpoint {path} is damaged "
                                  f"({', '.join(missing) or 'its _METADATA'} missing)")
        self._verify_digests(step)
        try:
            return self.manager.restore(step, args=ocp.args.StandardRestore(_abstract(like)))
        except Exception as e:
            raise CheckpointError(f"training checkpoint {path} is damaged "
                                  f"({_describe(e)})") from None

    def restore_latest(self, like: Any, *, set_aside: bool = False) -> tuple[int | None, Any]:
        """``(step, state)`` of the newest intact checkpoint, ``(None, None)`` when there is none.

        A damaged newer checkpoint is passed over with a warning; with ``set_aside`` (a run
        that goes on training) it is moved to ``WORKDIR/damaged-checkpoints/`` so the run can
        save that step again.

        Raises:
          CheckpointError: every checkpoint is damaged.
        """
        steps = sorted(self.manager.all_steps(), reverse=True)
        for i, step in enumerate(steps):
            try:
                restored = self.restore(step, like)
            except CheckpointError as e:
                if i + 1 == len(steps):
                    raise CheckpointError(f"{e}; no older intact checkpoint is left in "
                                          f"{self.directory}; use a new --workdir") from None
                warn(f"{e}; using the older checkpoint of step {steps[i + 1]}"
                     + (f" (the damaged one is moved to {self.workdir / self.DAMAGED})"
                        if set_aside else ""))
                continue
            if set_aside and i:
                self._set_aside(steps[:i])
            return step, restored
        return None, None

    def _set_aside(self, steps: list[int]) -> None:
        for step in steps:
            aside = self.workdir / self.DAMAGED / str(step)
            aside.parent.mkdir(exist_ok=True)
            n = 1
            while aside.exists():  # a copy set aside before: keep both
                aside, n = aside.with_name(f"{step}-{n}"), n + 1
            os.replace(self.directory / str(step), aside)
        self.manager.close()
        self.manager = self._open()  # it lists the steps it found when opened

    def close(self) -> None:
        self.manager.close()
