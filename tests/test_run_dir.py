"""The run directory: a folder holds one experiment."""

import pytest

from arabicpeft.config import ExperimentConfig
from arabicpeft.errors import ConfigError


def _run_dir(tmp_path, **changes):
    from arabicpeft.run_dir import RunDir

    RunDir(tmp_path / "run").claim(ExperimentConfig(output_dir=str(tmp_path / "run")))
    RunDir(tmp_path / "run").claim(ExperimentConfig(output_dir=str(tmp_path / "run"), **changes))


# (kind, call(tmp_path, tokenizer), exception, message: what was wrong ... what to do)
ERRORS = [
    ("results directory of a different experiment", lambda t, k: _run_dir(t, dialect="gulf"), ValueError,
     r"already holds a run with another config \(dialect: 'egyptian' -> 'gulf'\) — use a new --output-dir"),
    ("a broken run_config.json", lambda t, k: _broken_run_config(t), ConfigError,
     r"run/run_config.json is broken: not a JSON object of a run config \(Expecting property name.*\) — delete that "
     r"run folder to start over, or use a new --output-dir"),
    ("an output folder that is a file", lambda t, k: _output_in_a_file(t, "run.txt"), ConfigError,
     r"the output folder .*run.txt cannot be made: .*run.txt is a file, not a folder — give --output-dir "
     r"\(output_dir\) a folder path"),
    ("an output folder inside a file", lambda t, k: _output_in_a_file(t, "run.txt/sub"), ConfigError,
     r"the output folder .*run.txt/sub cannot be made: .*run.txt is a file, not a folder"),
]


def _broken_run_config(tmp_path):
    from arabicpeft.run_dir import RUN_CONFIG_FILE, RunDir

    (tmp_path / "run").mkdir()
    (tmp_path / "run" / RUN_CONFIG_FILE).write_text("{oops")  # e.g. cut short when the disk filled
    RunDir(tmp_path / "run").check(ExperimentConfig(output_dir=str(tmp_path / "run")))


def _output_in_a_file(tmp_path, output):
    from arabicpeft.run_dir import RunDir

    (tmp_path / "run.txt").write_text("notes")
    RunDir(tmp_path / output).check(ExperimentConfig(output_dir=str(tmp_path / output)))


@pytest.mark.parametrize("kind, call, error, message", ERRORS, ids=[e[0] for e in ERRORS])
def test_bad_input_is_a_clear_error(kind, call, error, message, tmp_path, tiny_processor):
    with pytest.raises(error, match=message):
        call(tmp_path, tiny_processor.tokenizer)


def _checkpoint(folder, step: int):
    """A checkpoint as the Trainer writes one (adapter, optimizer, trainer state), small."""
    import json

    import numpy as np
    import torch
    from safetensors.numpy import save_file

    path = folder / "checkpoints" / f"checkpoint-{step}"
    path.mkdir(parents=True)
    save_file({"lora_A": np.ones((4, 8), np.float32)}, str(path / "adapter_model.safetensors"))
    torch.save({"state": {0: torch.ones(16)}}, path / "optimizer.pt")
    (path / "trainer_state.json").write_text(json.dumps({"global_step": step, "max_steps": 8}))
    return path


@pytest.mark.parametrize("damaged", ["adapter_model.safetensors", "optimizer.pt", "trainer_state.json", None])
def test_a_checkpoint_cut_short_is_passed_over_with_the_reason(damaged, tmp_path):
    """the newest checkpoint with a file cut short (a full disk, a kill while saving) is not resumed; the
    newest complete one is, and the one passed over is named with the file and why."""
    from arabicpeft.run_dir import RunDir

    _checkpoint(tmp_path, 2)
    last = _checkpoint(tmp_path, 4)
    if damaged:
        path = last / damaged
        path.write_bytes(path.read_bytes()[: path.stat().st_size - 3])
    run = RunDir(tmp_path)
    if damaged is None:
        assert run.resume_checkpoint() == last and run.damaged_checkpoints() == [] and run.latest_step() == 4
        (last / "trainer_state.json").unlink()  # killed before the Trainer wrote its state (last)
        assert run.damaged_checkpoints() == ["checkpoint-4 (it has no trainer_state.json (cut off while saving))"]
        return
    assert run.resume_checkpoint().name == "checkpoint-2" and run.latest_step() == 2
    (why,) = run.damaged_checkpoints()
    assert why.startswith(f"checkpoint-4 ({damaged} ")
    assert {"adapter_model.safetensors": "is 197 bytes long, not the 200 its header gives",
            "optimizer.pt": "is not a whole PyTorch file (no zip central directory)",
            "trainer_state.json": "cannot be read (JSONDecodeError"}[damaged] in why
    with pytest.raises(ConfigError, match=r"the checkpoint .*checkpoint-4 cannot be resumed: .* — resume from an "
                                          r"earlier checkpoint-\* folder"):
        RunDir(last).resume_checkpoint()  # named explicitly (resume_from): refused


def test_one_process_holds_a_run_and_may_take_it_again(tmp_path):
    """the lock of a run folder is held by one process; the holder (the study launcher, then train.run)
    takes it again; another process is refused at once."""
    import subprocess
    import sys

    from arabicpeft.run_dir import RunDir, RunInUseError

    other = ("import sys\nfrom arabicpeft.run_dir import RunDir, RunInUseError\n"
             "try:\n    RunDir(sys.argv[1]).hold().__enter__()\nexcept RunInUseError as e:\n    print('REFUSED', e)\n")
    with RunDir(tmp_path / "run").hold():
        with RunDir(tmp_path / "run").hold():  # again, in this process
            pass
        done = subprocess.run([sys.executable, "-c", other, str(tmp_path / "run")], capture_output=True, text=True,
                              timeout=60)
        assert done.stdout.startswith(f"REFUSED another process is running {tmp_path / 'run'} now"), done.stderr
    with RunDir(tmp_path / "run").hold():  # released: free again
        pass
    assert RunInUseError.__mro__[1].__name__ == "SetupError"


def test_an_output_folder_is_checked_for_writing_without_making_it(tmp_path):
    from arabicpeft.run_dir import check_output_folder

    check_output_folder(tmp_path / "a" / "b")
    assert not (tmp_path / "a").exists() and list(tmp_path.iterdir()) == []
