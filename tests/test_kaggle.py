"""Where runs go and what the session allows: runs root, Kaggle session time, resuming an earlier session's run,
disk and hub checks, the early checks before a run, the environment report."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from arabicpeft import device
from arabicpeft import hub
from arabicpeft import kaggle as env
from arabicpeft.errors import DiskSpaceError, GPUUnavailableError, HubUnreachableError, SetupError
from arabicpeft.run_dir import RunDir
from arabicpeft.config import ExperimentConfig



@pytest.fixture
def not_kaggle(monkeypatch):
    monkeypatch.delenv(env._KAGGLE_ENV_VAR, raising=False)
    monkeypatch.delenv(env._OUTPUT_ENV_VAR, raising=False)


@pytest.fixture
def kaggle(monkeypatch, tmp_path):
    """A fake Kaggle: the run-type variable set, /kaggle/working and /kaggle/input under tmp_path."""
    monkeypatch.setenv(env._KAGGLE_ENV_VAR, "Batch")
    monkeypatch.delenv(env._OUTPUT_ENV_VAR, raising=False)
    monkeypatch.setattr(env, "_KAGGLE_WORKING", tmp_path / "working")
    monkeypatch.setattr(env, "_KAGGLE_INPUT", tmp_path / "input")
    return tmp_path


def fake_run(root: Path, steps=(250, 500), results=False) -> Path:
    """A run directory as train.run leaves it: checkpoints/checkpoint-N/trainer_state.json (+ results.json)."""
    for step in steps:
        ckpt = root / "checkpoints" / f"checkpoint-{step}"
        ckpt.mkdir(parents=True)
        (ckpt / "trainer_state.json").write_text(json.dumps({"global_step": step}))
        save_file({"lora_A": np.zeros((2, 4), np.float32)}, str(ckpt / "adapter_model.safetensors"))
    if results:
        (root / "results.json").write_text("{}")
    return root


def test_output_root_on_kaggle_is_kaggle_working_runs(kaggle):
    assert env.output_root() == (kaggle / "working" / "runs").resolve()


def test_output_root_env_var_wins(monkeypatch, tmp_path, kaggle):
    monkeypatch.setenv(env._OUTPUT_ENV_VAR, str(tmp_path / "mine"))
    assert env.output_root() == (tmp_path / "mine").resolve() and (tmp_path / "mine").is_dir()


def test_output_root_in_ci_profile_is_one_temporary_directory(monkeypatch, not_kaggle):
    monkeypatch.setenv("ARABICPEFT_PROFILE", "ci")
    monkeypatch.setattr(env, "_ci_root", None)
    first = env.output_root()
    assert first == env.output_root()
    assert "arabicpeft-ci-" in first.name and Path(os.getcwd()).resolve() not in first.parents


def test_output_root_locally_is_runs_in_the_working_directory(monkeypatch, tmp_path, not_kaggle):
    monkeypatch.setenv("ARABICPEFT_PROFILE", "full")
    monkeypatch.chdir(tmp_path)
    assert env.output_root() == (tmp_path / "runs").resolve()


def test_check_disk_says_what_to_do(tmp_path):
    assert env._check_disk(tmp_path, need_bytes=1) > 0
    with pytest.raises(DiskSpaceError, match="streaming=True"):
        env._check_disk(tmp_path / "not" / "yet", need_bytes=1e18)


def test_dataset_cache_bytes_only_for_unstreamed_hub_data():
    hub = ExperimentConfig(dialect="egyptian", source="hub", streaming=False)
    assert env._dataset_cache_bytes(hub) == pytest.approx((16_100 + 4_433) * env._ARROW_BYTES_PER_UTTERANCE)
    assert env._dataset_cache_bytes(ExperimentConfig(dialect="egyptian", source="hub", streaming=True)) == 0
    assert env._dataset_cache_bytes(ExperimentConfig(dialect="egyptian", source="sample")) == 0


def test_needs_hub():
    assert env._needs_hub(ExperimentConfig(source="hub", model="whisper-base"))
    assert env._needs_hub(ExperimentConfig(source="sample", model="openai/whisper-small"))
    assert not env._needs_hub(ExperimentConfig(source="sample", model="whisper-base"))
    assert not env._needs_hub(ExperimentConfig(source="sample", model="tiny-random"))


def test_unreachable_hub_stops_with_what_to_do(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(hub, "hub_reachable", lambda *a, **k: False)
    with pytest.raises(HubUnreachableError, match="Internet"):
        env._check_hub(ExperimentConfig(source="hub"))
    env._check_hub(ExperimentConfig(source="sample", model="tiny-random"))  # offline run: no error
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the user says the cache has the data
    env._check_hub(ExperimentConfig(source="hub", model="whisper-base"))


def test_session_time_left(kaggle):
    left = env._session_time_left_s()
    limit = env._KAGGLE_SESSION_S - env._SESSION_SAFETY_S - env._EVAL_MARGIN_S
    assert 0 < left <= limit and limit - left < 3600


def test_no_session_limit_off_kaggle(not_kaggle):
    assert env._session_time_left_s() is None


def test_find_previous_run_by_name_and_latest_checkpoint(tmp_path):
    root = tmp_path / "input"
    fake_run(root / "old-output" / "01_egyptian_lora_fp16_seed42", steps=(250,))
    fake_run(root / "newer-output" / "01_egyptian_lora_fp16_seed42", steps=(500, 750))
    fake_run(root / "newer-output" / "01_gulf_lora_fp16_seed42", steps=(1000,))
    found = env._find_previous_run("01_egyptian_lora_fp16_seed42", root)
    assert found == root / "newer-output" / "01_egyptian_lora_fp16_seed42"
    assert RunDir(found).latest_step() == 750
    assert env._find_previous_run("01_iraqi_lora_fp16_seed42", root) is None
    assert env._find_previous_run(None, tmp_path / "absent") is None


def test_find_previous_run_matches_study_paths(tmp_path):
    root = tmp_path / "input"
    fake_run(root / "out" / "02_egyptian_seed42" / "lora", results=True)
    fake_run(root / "out" / "02_gulf_seed42" / "lora", steps=(900,))
    assert env._find_previous_run("02_egyptian_seed42/lora", root) == root / "out" / "02_egyptian_seed42" / "lora"


def test_restore_previous_run_copies_once(tmp_path):
    root = tmp_path / "input"
    fake_run(root / "out" / "run1", steps=(250, 500))
    target = tmp_path / "working" / "run1"
    assert env._restore_previous_run(target, root=root) == root / "out" / "run1"
    assert RunDir(target).latest_step() == 500
    assert env._restore_previous_run(target, root=root) is None  # it has its own checkpoints now


def test_prepare_run_on_kaggle_restores_and_sets_a_time_budget(kaggle):
    fake_run(kaggle / "input" / "my-notebook-output" / "01_egyptian_lora_fp32_seed42", steps=(250,))
    cfg = ExperimentConfig(dialect="egyptian", model="tiny-random", source="sample", time_budget_s=None)
    logged = []
    ready = env.prepare_run(cfg, "01_egyptian_lora_fp32_seed42", log=logged.append)
    assert cfg == ExperimentConfig(dialect="egyptian", model="tiny-random", source="sample")  # a new config
    cfg = ready
    assert Path(cfg.output_dir) == (kaggle / "working" / "runs" / "01_egyptian_lora_fp32_seed42").resolve()
    assert RunDir(cfg.output_dir).latest_step() == 250
    assert cfg.extra["restored_from"].endswith("my-notebook-output/01_egyptian_lora_fp32_seed42")
    assert 0 < cfg.time_budget_s <= env._KAGGLE_SESSION_S - env._SESSION_SAFETY_S - env._EVAL_MARGIN_S
    assert any("resumes" in line for line in logged)


def test_prepare_run_with_an_explicit_resume_from_copies_nothing(kaggle):
    previous = fake_run(kaggle / "input" / "out" / "run", steps=(250,))
    cfg = ExperimentConfig(model="tiny-random", source="sample", resume_from=str(previous))
    cfg = env.prepare_run(cfg, "run", log=lambda m: None)
    assert "restored_from" not in cfg.extra and RunDir(cfg.output_dir).latest_step() is None


def test_prepare_run_keeps_a_shorter_budget_and_checks_precision(kaggle):
    cfg = ExperimentConfig(model="tiny-random", source="sample", time_budget_s=60)
    cfg = env.prepare_run(cfg, "short", log=lambda m: None)
    assert cfg.time_budget_s == 60
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(GPUUnavailableError):
            env.prepare_run(ExperimentConfig(model="tiny-random", source="sample", precision="fp16"), "gpu")


def test_environment_report(monkeypatch, tmp_path, not_kaggle):
    monkeypatch.setenv(env._OUTPUT_ENV_VAR, str(tmp_path))
    report = env._environment_report(check_hub_access=False)
    for key in ("python", "torch", "transformers", "peft", "GPU", "GPU compute capability", "free disk there (GB)",
                "Kaggle", "profile", "arabicpeft commit"):
        assert key in report
    assert report["Kaggle"] == "no" and report["free disk there (GB)"] > 0
    frame = env.report_frame(report)
    assert list(frame.index) == list(report) and frame.loc["python", "value"] == report["python"]


def test_preflight_checks_paths_and_the_gpu_without_loading_anything(tmp_path, monkeypatch):
    offline = dict(model="tiny-random", source="sample")
    env.preflight(ExperimentConfig(**offline))
    with pytest.raises(SetupError, match=f"the data folder {tmp_path / 'x'} does not exist"):
        env.preflight(ExperimentConfig(model="tiny-random", source="local", data_path=str(tmp_path / "x")))
    with pytest.raises(SetupError, match="resume_from=.* does not exist"):
        env.preflight(ExperimentConfig(**offline, resume_from=str(tmp_path / "ckpt")))
    monkeypatch.setattr(device, "_no_gpu_driver", lambda: True)
    with pytest.raises(GPUUnavailableError, match="precision nf4 needs a CUDA GPU"):
        env.preflight(ExperimentConfig(**offline, precision="nf4"))
    env.preflight(ExperimentConfig(**offline, precision="bf16"))  # bf16 runs on a CPU
