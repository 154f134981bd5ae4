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
