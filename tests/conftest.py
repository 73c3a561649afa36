"""Shared fixtures.

Tests that read the real CIFAR-10 copy in ``../shared/data/cifar10`` (beside the repository) take
the ``shared_cifar10`` fixture, so they skip with a clear reason where that folder is absent.
``victim`` (alias ``tiny``) is the one tiny test victim: an untrained ``tiny`` network exported
as a checkpoint, and the victim loaded from it, made once per session.
Nothing here imports JAX: test modules that set ``XLA_FLAGS`` must get to do so first.
"""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# The fixtures' own scripts (e.g. the PyTorch export of the ONNX fixture) are not tests: torch
# is needed only to run them again.
collect_ignore_glob = ["fixtures/*.py"]
SHARED_CIFAR10 = REPO.parent / "shared" / "data" / "cifar10"


@pytest.fixture(scope="session")
def shared_cifar10() -> Path:
    """The folder of real CIFAR-10 ``.npz`` files (``test.npz``, ``train-<k>.npz``)."""
    if not (SHARED_CIFAR10 / "test.npz").is_file():
        pytest.skip(f"real CIFAR-10 not found at {SHARED_CIFAR10} (expected test.npz and "
                    f"train-<k>.npz beside the repository in ../shared/data/cifar10)")
    return SHARED_CIFAR10


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """``(checkpoint folder, LoadedVictim)`` of the session's tiny test victim."""
    from _attack_support import tiny_victim

    return tiny_victim(tmp_path_factory)


@pytest.fixture(scope="session")
def victim(tiny):
    """The tiny test victim (a module may define its own ``victim`` instead)."""
    return tiny
