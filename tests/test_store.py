"""The run store and the one run loop: checksummed payloads, honest counts of what is
reusable, progress with an estimate, and hashes that change with what they cover."""

from __future__ import annotations

import json

import pandas as pd

from privbias_lib.hashing import frame_hash, sha256_file, stable_hash
from privbias_lib.store import (
    PROGRESS_ENV,
    Progress,
    Run,
    RunStore,
    describe_progress,
    execute_plan,
)


def test_a_damaged_stored_run_is_counted_and_recomputed(tmp_path):
    store = RunStore(tmp_path)
    runs = [Run(f"r{i}", {"i": i}) for i in range(4)]
    computed = []

    def compute(run):
        computed.append(run.name)
        return {"square": run.spec["i"] ** 2}

    said = []
    first = execute_plan(runs, compute, store, common={}, say=said.append)
    assert [p["square"] for p in first] == [0, 1, 4, 9] and len(computed) == 4
    files = sorted(tmp_path.glob("*.json"))
    files[0].write_text(files[0].read_text().replace("payload", "paylaod"))  # damaged
    stored = json.loads(files[1].read_text())
    stored["payload"]["square"] = 99  # changed behind the checksum's back
    files[1].write_text(json.dumps(stored))
    computed.clear()
    said.clear()
    again = execute_plan(runs, compute, store, common={}, say=said.append)
    assert again == first and len(computed) == 2
    assert said == [
        "runs: 4 planned, 2 already done, 2 to compute; 2 stored result(s) failed their "
        "checksum and run again"
    ]


def test_the_progress_file_reports_counts_and_an_estimate(tmp_path, monkeypatch):
    target = tmp_path / "progress.json"
    monkeypatch.setenv(PROGRESS_ENV, str(target))
    progress = Progress("study 9 runs", 3)
    progress.start("first", cached=True)
    progress.finish()
    assert progress.eta() is None  # nothing computed yet: no estimate
    progress.start("second", cached=False)
    state = json.loads(target.read_text())
    assert state["done"] == 1 and state["total"] == 3 and state["current"] == "second"
    progress.computed_seconds, progress.computed = 10.0, 1  # as if one run took 10 s
    progress.done = 2
    assert progress.eta() == 10.0
    line = describe_progress({**state, "done": 2, "eta_s": 10.0, "elapsed_s": 75})
    assert line == "study 9 runs 2/3 · 1m15s · ~10s left · second"
    progress.close()
    assert not target.exists()


def test_progress_is_silent_when_turned_off(tmp_path, monkeypatch):
    monkeypatch.setenv(PROGRESS_ENV, "off")
    progress = Progress("x", 1)
    assert progress.file is None and progress.bar is None


def test_hashes_change_with_what_they_cover(tmp_path):
    assert stable_hash({"a": 1, "b": [1, 2]}) == stable_hash({"b": [1, 2], "a": 1})
    assert stable_hash({"a": 1}) != stable_hash({"a": 1.5})
    df = pd.DataFrame({"x": [1, 2]})
    assert frame_hash(df) != frame_hash(df.iloc[::-1]) and frame_hash(df) == frame_hash(df.copy())
    f = tmp_path / "f"
    f.write_bytes(b"abc")
    assert sha256_file(f) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
