import json

import numpy as np

from arabicpeft.results import peak_memory, provenance, read_results, reset_peak_memory, write_results


def test_results_are_written_atomically_with_provenance_and_no_nan(tmp_path):
    path = write_results(tmp_path / "run", {"metrics": {"x": {"raw": {"wer": float("nan"), "cer": 1.5}}}})
    assert sorted(p.name for p in path.parent.iterdir()) == ["results.json"]  # no temporary file left
    data = json.loads(path.read_text())  # strict JSON: NaN written as null
    assert data["metrics"]["x"]["raw"] == {"wer": None, "cer": 1.5}
    assert data["schema"] == "arabicpeft.results/1"
    assert data["provenance"]["versions"]["torch"] and data["provenance"]["hardware"]["cpu_count"] >= 1
    assert read_results(path.parent) == data


def test_provenance_names_the_git_commit():
    from pathlib import Path

    commit = provenance()["git_commit"]
    if (Path(__file__).resolve().parents[1] / ".git").exists():  # a checkout (CI clones one): it must be known
        assert len(commit.split("-")[0]) == 40 and int(commit[:40], 16) >= 0


def test_peak_memory_window_can_be_reset():
    block = np.ones(400_000_000 // 8)  # 400 MB resident
    block[::512] = 2.0
    high = peak_memory()["bytes"]
    del block
    reset_peak_memory()
    low = peak_memory()
    if low["kind"] == "peak_rss":  # resettable on Linux; elsewhere the lifetime peak is reported as such
        assert low["bytes"] < high - 300_000_000


def test_results_files_get_the_permissions_of_other_new_files(tmp_path):
    import pandas as pd

    from arabicpeft.results import write_csv_atomic, write_json_atomic

    (tmp_path / "plain.txt").write_text("x")
    plain = (tmp_path / "plain.txt").stat().st_mode & 0o777
    assert (write_json_atomic(tmp_path / "results.json", {"a": 1}).stat().st_mode & 0o777) == plain
    assert (write_csv_atomic(tmp_path / "u.csv", pd.DataFrame({"a": [1]})).stat().st_mode & 0o777) == plain
    assert not list(tmp_path.glob(".*.tmp"))
