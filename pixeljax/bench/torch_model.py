"""The PyTorch network itself beside its ONNX export, for ``pixeljax bench --model net.onnx
--torch FILE``: a TorchScript file (``torch.jit.save``) or an exported program
(``torch.export.save``, a ``.pt2`` file), loaded on the CPU and called under
``torch.no_grad`` with PyTorch's default threads (a TorchScript module in eval mode; a
program runs in the mode it was exported in). PyTorch is imported here only, and only when
asked: pixeljax never needs it otherwise."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from pixeljax.errors import PixeljaxError

SAME_NETWORK_IMAGES = 32  # images on which the file must give the ONNX model's classes


def _torch():
    try:
        import torch
    except ImportError:
        raise PixeljaxError("--torch needs PyTorch, which is not installed (pip install torch)"
                            ) from None
    return torch


def check_torch_file(path: str | Path) -> None:
    """Raises PixeljaxError (one line) when ``path`` is not a file or PyTorch is missing."""
    if not Path(path).is_file():
        raise PixeljaxError(f"--torch {path}: no such file (a TorchScript file written by "
                            f"torch.jit.save, or a .pt2 file by torch.export.save)")
    _torch()


def load_torch_model(path: str | Path, layout: str):
    """The PyTorch network in ``path`` (TorchScript, or ``.pt2``: an exported program) as a
    function of float32 (N, H, W, C) pixel values to its outputs as a NumPy array, fed in
    ``layout`` (``"nchw"``: PyTorch's own, as the ONNX export of it takes them; ``"nhwc"``).

    Raises:
      PixeljaxError: PyTorch is missing, or ``path`` is missing or neither kind of file.
    """
    check_torch_file(path)
    torch = _torch()
    exported = Path(path).suffix == ".pt2"
    try:
        with warnings.catch_warnings():  # torch.jit is deprecated, and still what many save
            warnings.simplefilter("ignore", DeprecationWarning)
            module = (torch.export.load(str(path)).module() if exported
                      else torch.jit.load(str(path), map_location="cpu").eval())
    except Exception as err:  # torch raises RuntimeError, ValueError or its own errors
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        kind = ("an exported program written by torch.export.save" if exported
                else "a TorchScript file written by torch.jit.save")
        raise PixeljaxError(f"--torch {path}: not {kind} ({first})") from None
    order = (0, 3, 1, 2) if layout == "nchw" else (0, 1, 2, 3)

    def logits(images: np.ndarray) -> np.ndarray:
        batch = torch.from_numpy(np.ascontiguousarray(np.transpose(images, order), np.float32))
        with torch.no_grad():
            return module(batch).numpy()

    return logits


def check_same_network(torch_logits, predict, images: np.ndarray, model: str, path) -> None:
    """Raises PixeljaxError unless ``torch_logits`` gives ``predict``'s classes on the first
    :data:`SAME_NETWORK_IMAGES` of ``images`` (the file and the ONNX model are one network)."""
    x = np.asarray(images[:SAME_NETWORK_IMAGES], np.float32)
    try:
        theirs = np.asarray(torch_logits(x))
    except Exception as err:  # a network of another input size or channel count
        raise PixeljaxError(f"--torch {path} does not take the images {model} takes "
                            f"({type(err).__name__}: {str(err).strip().splitlines()[0]})"
                            ) from None
    ours = np.asarray(predict(x))
    if theirs.shape != ours.shape:
        raise PixeljaxError(f"--torch {path} is not the network of {model}: its outputs are "
                            f"{theirs.shape} on {len(x)} images, {model}'s {ours.shape}")
    differ = int((theirs.argmax(-1) != ours.argmax(-1)).sum())
    if differ:
        raise PixeljaxError(f"--torch {path} is not the network of {model}: their classes "
                            f"differ on {differ} of the first {len(x)} images")
