"""Scaling out: many devices in one process, and many processes, give the results of one device.

The 8-device checks run in a process started with
``XLA_FLAGS=--xla_force_host_platform_device_count=8`` (the flag must be set before JAX starts,
so this session keeps its single device). The multi-process checks start processes that join a
``jax.distributed`` run with a coordinator on 127.0.0.1. Every started process is bounded by a
timeout. The victim is a linear classifier of 8x8 images (``_sharding_support``), so that
compiling, not attacking, is the cost.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import _sharding_support as support
import pytest

REPO = Path(__file__).resolve().parents[1]
SUPPORT = Path(support.__file__)
TIMEOUT_S = 600


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k != "XLA_FLAGS" and not k.startswith("SLURM_")}
    env.update(PYTHONPATH=os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]),
               JAX_PLATFORMS="cpu", PYTHONUNBUFFERED="1", **extra)
    return env


def _start(*args, **env) -> subprocess.Popen:
    # Output goes to files, not pipes: a process whose output nobody reads yet (the workers
    # run beside the session, and are read one after the other) never blocks on a full pipe,
    # which would hold back its partner at JAX's shutdown barrier.
    logs = tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+")
    process = subprocess.Popen([sys.executable, *map(str, args)], cwd=REPO, env=_env(**env),
                               stdout=logs[0], stderr=logs[1], text=True)
    process.logs = logs
    return process


def _read(log) -> str:
    log.seek(0)
    return log.read()


def _finish(process: subprocess.Popen, timeout: float = TIMEOUT_S) -> tuple[int, str, str]:
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        pytest.fail(f"{process.args} ran past {timeout} s\n{_read(process.logs[1])[-3000:]}")
    return process.returncode, _read(process.logs[0]), _read(process.logs[1])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _by_id(rows: list[dict]) -> list[dict]:
    return sorted(rows, key=lambda r: r["attack_id"])


# The processes start once for the whole module and run side by side with this session.

@pytest.fixture(scope="module")
def started(tmp_path_factory):
    root = tmp_path_factory.mktemp("sharding")
    (root / "eight").mkdir()
    address = f"127.0.0.1:{_free_port()}"
    procs = {
        "eight": _start(SUPPORT, "devices", root / "eight",
                        XLA_FLAGS="--xla_force_host_platform_device_count=8"),
        "workers": [_start(SUPPORT, "worker", root / "two", address, 2, i) for i in range(2)],
    }
    yield root, procs
    for p in [procs["eight"], *procs["workers"]]:
        if p.poll() is None:
            p.kill()
            p.wait()


@pytest.fixture(scope="module")
def reference(started, tmp_path_factory):
    """The single-process, single-device results (this session has one device)."""
    import jax

    assert jax.local_device_count() == 1
    out = tmp_path_factory.mktemp("reference")
    summary = support.attack(out)
    from pixeljax.runs import results

    return summary, results.read_rows(out)


@pytest.fixture(scope="module")
def eight(started):
    rc, out, err = _finish(started[1]["eight"])
    assert rc == 0, err[-3000:]
    return json.loads(out.splitlines()[-1])


@pytest.fixture(scope="module")
def two(started):
    root, procs = started
    finished = [_finish(p) for p in procs["workers"]]
    for rc, _, err in finished:
        assert rc == 0, err[-3000:]
    return root / "two", [json.loads(out.splitlines()[-1]) for _, out, _ in finished]


# Many devices, one process.

def test_eight_devices_give_exactly_the_results_of_one_device(reference, eight):
    assert eight["device_count"] == 8
    summary, rows = reference
    assert any(r["success"] for r in rows) and any(r["status"] == "failure" for r in rows)
    assert len({r["generations"] for r in rows}) > 2  # attacks stop at different times
    assert _by_id(eight["rows"]) == _by_id(rows)
    assert eight["summary"]["devices"] == 8
    same = ("n_images", "n_attacked", "n_skipped", "n_success", "evaluations", "n_pairs")
    assert {k: eight["summary"][k] for k in same} == {k: summary[k] for k in same}


def test_a_sweep_on_eight_devices_gives_exactly_the_results_of_one_device(eight, tmp_path):
    summary, rows, maps = support.sweep(tmp_path / "one")
    assert eight["sweep_summary"]["devices"] == 8
    assert any(r["success"] for r in rows) and not all(r["success"] for r in rows)
    assert _by_id(eight["sweep_rows"]) == _by_id(rows)
    assert eight["sweep_maps"] == maps


def test_more_devices_than_the_process_has_is_a_clear_error(eight):
    assert "devices must be between 1 and the 8 CPU device(s)" in eight["nine"]
    assert "got 9" in eight["nine"]


def test_bench_reports_throughput_per_device_count_as_ratios_to_one_device(eight):
    assert eight["bench_status"] == 0
    runs = eight["bench"]["runs"]
    assert [r["devices"] for r in runs] == [1, 2, 4, 8]
    assert runs[0]["speedup"] == 1.0
    for r in runs:
        assert r["evaluations_per_second"] > 0 and r["evaluations"] > 0
        assert r["attacked"] == r["devices"]  # one image per device
        assert r["efficiency"] == pytest.approx(r["speedup"] / r["devices"])


def test_slots_round_up_to_a_multiple_of_the_device_count():
    from pixeljax.attack.sizes import slot_count

    assert [slot_count(s, 8) for s in (1, 8, 9, 32)] == [8, 8, 16, 32]
    assert [slot_count(s, 3) for s in (4, 6)] == [6, 6]
    assert slot_count(5, 1) == 5


def test_new_attacks_go_to_the_device_with_the_most_free_slots_first():
    from pixeljax.attack.engine import fill_order

    assert fill_order([0, 1, 2, 3], 4) == [0, 1, 2, 3]  # one device: slot order
    # Two devices of 4 slots: device 0 has 1 free slot (3), device 1 has 3 (4, 5, 7).
    assert fill_order([3, 4, 5, 7], 4) == [4, 5, 3, 7]


def test_a_device_count_that_does_not_fit_is_refused(tmp_path, capsys):
    from pixeljax.attack.api import pixel_attack
    from pixeljax.attack.mesh import local_devices
    from pixeljax.cli import main
    from pixeljax.errors import PixeljaxError

    for bad in (0, 2, -1):
        with pytest.raises(PixeljaxError, match="devices must be between 1 and the 1"):
            local_devices(bad)
    predict, data = support.victim_and_data()
    with pytest.raises(PixeljaxError, match="got 2"):
        import jax
        pixel_attack(predict, data.x, data.y, key=jax.random.key(0), popsize=8, devices=2)
    assert main(["attack", "tiny", "--out", str(tmp_path / "x"), "--devices", "0"]) == 2
    assert "devices must be between 1 and the 1 CPU device(s)" in capsys.readouterr().err
    assert main(["bench", "--model", "tiny", "--devices", "1,4"]) == 2
    assert "got 4" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["bench", "--devices", "0,1"])
    assert not (tmp_path / "x").exists()


# Many processes.

def test_two_processes_merged_give_exactly_the_single_process_results(reference, two):
    folder, summaries = two
    from pixeljax.runs import results

    assert sorted(p.name for p in folder.glob("results*.csv")) == [
        "results-0-of-2.csv", "results-1-of-2.csv"]
    _, rows = reference
    assert results.read_rows(folder) == _by_id(rows)
    shards = [results.read_file(folder / f"results-{i}-of-2.csv") for i in range(2)]
    assert all(shards) and {r["attack_id"] for r in shards[0]}.isdisjoint(
        r["attack_id"] for r in shards[1])
    timeless = [{k: v for k, v in s.items() if "second" not in k} for s in summaries]
    assert timeless[0] == timeless[1]  # both report the merged run
    written = json.loads((folder / results.SUMMARY).read_text())
    summary, _ = reference
    for key in ("n_images", "n_attacked", "n_success", "evaluations", "n_pairs",
                "targeted_success_rate"):
        assert written[key] == summary[key], key
    assert written["processes"] == 2 and written["devices"] == 2


def test_a_rerun_completes_only_the_attacks_of_a_lost_process(tmp_path, reference):
    from pixeljax.runs import results

    _, rows = reference
    support.attack(tmp_path, process=0, num_processes=2)  # process 1 never ran
    first = results.read_rows(tmp_path)
    assert 0 < len(first) < len(rows)
    seen = []
    support.attack(tmp_path, on_rows=lambda batch: seen.extend(batch.to_rows()))  # as one process
    assert results.read_rows(tmp_path) == _by_id(rows)
    assert {r["attack_id"] for r in first}.isdisjoint(r["attack_id"] for r in seen)
    assert {r["attack_id"] for r in results.read_file(tmp_path / results.RESULTS)} == \
        {r["attack_id"] for r in rows} - {r["attack_id"] for r in first}


def test_processes_with_different_configurations_refuse_to_start(tmp_path):
    address = f"127.0.0.1:{_free_port()}"
    procs = [_start(SUPPORT, "worker", tmp_path / "out", address, 2, i, seed)
             for i, seed in ((0, 0), (1, 1))]
    for rc, out, err in (_finish(p, 180) for p in procs):
        assert rc == 2, err[-2000:]
        assert "run different configurations" in err and "seed: " in err
    assert not (tmp_path / "out" / "config.json").exists()  # nothing was written


def test_an_unreachable_coordinator_is_a_clear_error_within_the_timeout(tmp_path):
    def command(i: int) -> list:
        return ["-m", "pixeljax", "attack", "tiny", "--out", tmp_path / "out",
                "--coordinator", f"127.0.0.1:{_free_port()}", "--num-processes", "2",
                "--process-id", i, "--coordinator-timeout", "2"]

    started = time.monotonic()
    joiner = _start(*command(1))  # nothing listens at its coordinator's port
    alone = _start(*command(0))   # process 0 waits for process 1 in vain
    rc, _, err = _finish(joiner, 120)
    assert rc == 2 and "cannot reach the coordinator at 127.0.0.1" in err, err[-2000:]
    rc, _, err = _finish(alone, 120)
    assert rc == 2 and "not all processes joined" in err, err[-2000:]
    assert time.monotonic() - started < 60
    assert not (tmp_path / "out").exists()


def test_incomplete_or_inconsistent_process_settings_are_refused():
    from pixeljax.errors import PixeljaxError
    from pixeljax.runtime import distributed

    with pytest.raises(PixeljaxError, match="go together"):
        distributed.initialize("127.0.0.1:1234", None, 0)
    with pytest.raises(PixeljaxError, match=r"\[0, 1\]"):
        distributed.initialize("127.0.0.1:1234", 2, 2)
    with pytest.raises(PixeljaxError, match="HOST:PORT"):
        distributed.initialize("localhost", 2, 1)
    assert distributed.initialize(auto=False) == (0, 1)


# The results folder of several processes.

def _row(attack_id: int, **extra) -> dict:
    from pixeljax.runs import results

    row = {c: 0 for c in results.columns(1)}
    row.update(attack_id=attack_id, status="failure", confidence=0.5, **extra)
    return row


def test_read_rows_merges_the_shards_once_per_attack_in_attack_id_order(tmp_path):
    from pixeljax.runs import results

    for (p, n), ids in {(0, 2): [9, 2], (1, 2): [5, 7], (0, 1): [7, 3]}.items():
        with results.ResultsWriter(tmp_path, 1, process=p, num_processes=n) as w:
            w.write([_row(i, image_index=p) for i in ids])
    with open(tmp_path / "results-1-of-2.csv", "a") as f:
        f.write("11,0,0")  # a kill in mid-write: ignored, and left for its own process
    rows = results.read_rows(tmp_path)
    assert [r["attack_id"] for r in rows] == [2, 3, 5, 7, 9]
    assert [r for r in rows if r["attack_id"] == 7][0]["image_index"] == 0  # results.csv first
    assert (tmp_path / "results-1-of-2.csv").read_text().endswith("11,0,0")
    assert [p.name for p in results.result_files(tmp_path)] == [
        "results.csv", "results-0-of-2.csv", "results-1-of-2.csv"]


RUN = {"mode": "all-targets", "pixels": 1, "data_sha256": "0" * 64}  # every config.json's


def test_one_config_json_when_processes_start_together_and_a_mismatch_is_refused(tmp_path):
    from pixeljax.errors import PixeljaxError
    from pixeljax.runs import results

    errors = []

    def start():
        try:
            results.check_config(tmp_path / "run", {"seed": 0, "model": "linear", **RUN})
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=start) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["config.json"]
    with pytest.raises(PixeljaxError, match="seed: 0 there, 1 now"):
        results.check_config(tmp_path / "run", {"seed": 1, "model": "linear", **RUN})


def test_a_shard_without_config_json_is_refused(tmp_path):
    from pixeljax.errors import PixeljaxError
    from pixeljax.runs import results

    (tmp_path / "results-0-of-2.csv").write_text("attack_id\n")
    with pytest.raises(PixeljaxError, match="results-0-of-2.csv but no config.json"):
        results.check_config(tmp_path, {"seed": 0})


def test_the_readme_scaling_section_names_the_commands():
    text = (REPO / "README.md").read_text().split("## Scaling out")[1].split("\n## ")[0]
    for needle in ("srun", "gcloud", "--worker=all", "pixeljax attack", "--devices",
                   "--coordinator", "results-<p>-of-<n>.csv"):
        assert needle in text, needle
