"""Runs over many hosts: joining the job, agreeing on what is run, waiting for one another.

The one module that talks to ``jax.distributed`` and its coordination service, so a change of
that API is a local change here. In a multi-process attack run each process works alone on its
own share of the attacks, on its own devices; the processes meet only here: when they join
(:func:`initialize`), when they compare their configurations (:func:`check_same`) and when they
finish (:func:`barrier`).
"""

from __future__ import annotations

import collections
import contextlib
import importlib.util
import json
import os
import socket
import sys
import threading
import time
from collections.abc import Mapping

import jax

from pixeljax.errors import PixeljaxError

DEFAULT_TIMEOUT_S = 300   # joining: how long to wait for the coordinator and the other processes
REPORT_TIMEOUT_S = 3600   # how long a process waits for the others' configurations
FINISH_TIMEOUT_S = 7 * 24 * 3600  # how long a finished process waits for the others
_GRACE_S = 10             # JAX's own join deadline comes this much after ours
_SLURM = ("SLURM_JOB_ID", "SLURM_STEP_NODELIST", "SLURM_NTASKS", "SLURM_PROCID",
          "SLURM_LOCALID")
_calls: collections.Counter = collections.Counter()


def detect_cluster() -> str | None:
    """``"slurm"`` inside a Slurm job step of several tasks (``srun``), ``"tpu"`` on a Cloud TPU
    VM (libtpu installed), else None."""
    env = os.environ
    if all(k in env for k in _SLURM):
        try:
            if int(env.get("SLURM_STEP_NUM_TASKS", env["SLURM_NTASKS"])) > 1:
                return "slurm"
        except ValueError:
            pass
    if importlib.util.find_spec("libtpu") is not None:
        return "tpu"
    return None


def initialize(coordinator: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, *, auto: bool = True,
               timeout: float = DEFAULT_TIMEOUT_S) -> tuple[int, int]:
    """Joins a multi-process run; call it before anything else uses JAX.

    With ``coordinator`` ("HOST:PORT" of process 0), ``num_processes`` and ``process_id`` the run
    is joined explicitly. Without them, ``auto`` joins the run of a detected cluster (Slurm
    ``srun`` steps, Cloud TPU pod slices: :func:`detect_cluster`) and does nothing elsewhere.

    Joining is bounded by ``timeout`` seconds: a coordinator that cannot be reached raises a
    :class:`PixeljaxError`; processes that do not all join in time end this process with a
    one-line ``error:`` message and exit status 2 (JAX would otherwise abort it).

    Returns:
      ``(process_id, num_processes)``; ``(0, 1)`` when there is nothing to join.

    Raises:
      PixeljaxError: incomplete or inconsistent settings, or an unreachable coordinator.
    """
    if jax.distributed.is_initialized():
        return jax.process_index(), jax.process_count()
    explicit = (coordinator, num_processes, process_id)
    if any(v is not None for v in explicit):
        if any(v is None for v in explicit):
            raise PixeljaxError("--coordinator, --num-processes and --process-id go together; "
                                "give all three (or none, on a Slurm or TPU cluster)")
        if num_processes < 1 or not 0 <= process_id < num_processes:
            raise PixeljaxError(f"--process-id must lie in [0, {num_processes - 1}] and "
                                f"--num-processes be >= 1, got process {process_id} of "
                                f"{num_processes}")
        host, port = _address(coordinator)
        if process_id != 0:
            _wait_reachable(host, port, coordinator, timeout)
        where = f"the coordinator at {coordinator}"
    elif auto and (cluster := detect_cluster()) is not None:
        where = f"the {cluster} cluster's coordinator"
    else:
        return 0, 1
    message = (f"not all processes joined {where} within {timeout:g} s; start every process "
               f"(each with its own --process-id) and check the address and firewall")
    with _watchdog(timeout, message):
        try:
            jax.distributed.initialize(coordinator, num_processes, process_id,
                                       initialization_timeout=int(timeout + _GRACE_S))
        except (ValueError, RuntimeError) as e:
            if coordinator is None and "coordinator_address" in str(e):
                return 0, 1  # a cluster-like environment that JAX does not recognise
            raise PixeljaxError(f"cannot join {where}: {str(e).splitlines()[0]}") from None
    return jax.process_index(), jax.process_count()


def _address(coordinator: str) -> tuple[str, int]:
    host, _, port = coordinator.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise PixeljaxError(f"--coordinator must be HOST:PORT (process 0's address), got "
                            f"{coordinator!r}")
    return host.strip("[]"), int(port)


def _wait_reachable(host: str, port: int, coordinator: str, timeout: float) -> None:
    """Waits until process 0's coordinator accepts connections (it may start later)."""
    deadline, error = time.monotonic() + timeout, None
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise PixeljaxError(f"cannot reach the coordinator at {coordinator} within "
                                f"{timeout:g} s ({error}); start process 0 there first, or "
                                f"check the address, port and firewall")
        try:
            socket.create_connection((host, port), timeout=min(left, 2.0)).close()
            return
        except OSError as e:
            error = e.strerror or type(e).__name__
            time.sleep(min(0.25, max(left, 0)))


@contextlib.contextmanager
def _watchdog(seconds: float, message: str):
    """Ends the process with ``error: message`` (status 2) if the block outlasts ``seconds``."""
    def fire():
        sys.stderr.write(f"error: {message}\n")
        sys.stderr.flush()
        os._exit(2)

    timer = threading.Timer(seconds, fire)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def _client():
    from jax._src import distributed  # the coordination service's key-value store
    return distributed.global_state.client


def _multi_process() -> bool:
    return jax.distributed.is_initialized() and jax.process_count() > 1


def check_same(what: str, value: Mapping, *, timeout: float = REPORT_TIMEOUT_S) -> None:
    """Refuses to go on unless every process passes the same ``value`` (compared as JSON).

    Every process of a run must call it, in the same order; with one process it does nothing.

    Raises:
      PixeljaxError: another process passed a different value (the message names the
        differing keys), or did not report within ``timeout`` seconds.
    """
    if not _multi_process():
        return
    key = f"pixeljax/{what}/{_calls[what]}"
    _calls[what] += 1
    me, count = jax.process_index(), jax.process_count()
    mine = json.loads(json.dumps(dict(value), sort_keys=True, default=str))
    client = _client()
    client.key_value_set(f"{key}/{me}", json.dumps(mine, sort_keys=True))
    for other in range(count):
        if other == me:
            continue
        try:
            theirs = json.loads(client.blocking_key_value_get(f"{key}/{other}",
                                                              int(timeout * 1000)))
        except Exception as e:  # noqa: BLE001  (the service raises JaxRuntimeError)
            raise PixeljaxError(f"process {other} did not report its {what} within "
                                f"{timeout:g} s ({str(e).splitlines()[0]})") from None
        if theirs != mine:
            keys = sorted(k for k in set(theirs) | set(mine) if theirs.get(k) != mine.get(k))
            detail = ", ".join(f"{k}: {mine.get(k)!r} here, {theirs.get(k)!r} there"
                               for k in keys)
            raise PixeljaxError(f"process {me} and process {other} run different {what}s "
                                f"({detail}); start every process with the same options")


def barrier(name: str, *, timeout: float = FINISH_TIMEOUT_S) -> bool:
    """Waits until every process gets here; False if that took longer than ``timeout``
    seconds (or the run has one process: then it returns True at once)."""
    if not _multi_process():
        return True
    key = f"pixeljax/{name}/{_calls[name]}"
    _calls[name] += 1
    try:
        _client().wait_at_barrier(key, int(timeout * 1000))
    except Exception:  # noqa: BLE001  (the service raises JaxRuntimeError)
        return False
    return True


__all__ = ["DEFAULT_TIMEOUT_S", "barrier", "check_same", "detect_cluster", "initialize"]
