"""The hub: a model name written as a path must exist, a hub id is checked once (offline mode first, then one
probe), and the early checks say so in one line."""

import pytest

from arabicpeft import hub
from arabicpeft import kaggle as env
from arabicpeft.config import ExperimentConfig
from arabicpeft.errors import HubUnreachableError, SetupError


def test_a_hub_model_is_checked_once_offline_mode_first(monkeypatch, tmp_path):
    """a hub id that cannot be had is one line at once (before: 61 s and 22 lines of HTTP retries)."""
    from huggingface_hub import constants

    probes = []
    monkeypatch.setattr(hub, "hub_reachable", lambda *a, **k: probes.append(a) or False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for check in (lambda: hub.check_model_name("whisper-small", saved=True),
                  lambda: env.preflight(ExperimentConfig(model="whisper-small", source="sample",
                                                         output_dir=str(tmp_path / "run")))):
        with pytest.raises(HubUnreachableError, match=r"^the model whisper-small is not in your HF cache, and "
                           r"HF_HUB_OFFLINE=1 keeps the hub out — give a local folder or an offline model "
                           r"\(whisper-base, tiny-random, tiny-random-large-v3, tiny-random-qwen3-asr\)"):
            check()
    assert probes == []  # offline mode: no network probe
    snapshot = tmp_path / "models--org--cached" / "snapshots" / "abc"  # the HF cache's layout
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (tmp_path / "models--org--cached" / "refs").mkdir()
    (tmp_path / "models--org--cached" / "refs" / "main").write_text("abc")
    hub.check_model_name("org/cached", saved=True)
    monkeypatch.delenv("HF_HUB_OFFLINE")
    with pytest.raises(HubUnreachableError, match=r"^cannot reach huggingface.co, which this run needs for its "
                                                  r"data \(source hub\) and its model org/cached — On Kaggle"):
        env.preflight(ExperimentConfig(model="org/cached", output_dir=str(tmp_path / "run")))
    assert len(probes) == 1  # the model and the data: one probe


def test_a_model_written_as_a_path_must_exist(tmp_path):
    for hub_or_offline in ("openai/whisper-small", "whisper-base", "tiny-random", "my-model"):
        hub.check_model_name(hub_or_offline, hub=False)
    hub.check_model_name(str(tmp_path))  # an existing folder
    for path in (str(tmp_path / "nope"), "./nope", "~/nope-arabicpeft", "runs/egy/model"):
        with pytest.raises(SetupError, match="does not exist — check the path"):
            hub.check_model_name(path)
