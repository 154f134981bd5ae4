"""The run directory: a folder holds one experiment."""

import pytest

from arabicpeft.config import ExperimentConfig


def _run_dir(tmp_path, **changes):
    from arabicpeft.run_dir import RunDir

    RunDir(tmp_path / "run").claim(ExperimentConfig(output_dir=str(tmp_path / "run")))
    RunDir(tmp_path / "run").claim(ExperimentConfig(output_dir=str(tmp_path / "run"), **changes))


# (kind, call(tmp_path, tokenizer), exception, message: what was wrong ... what to do)
ERRORS = [
    ("results directory of a different experiment", lambda t, k: _run_dir(t, dialect="gulf"), ValueError,
     r"already holds a run with another config \(dialect: 'egyptian' -> 'gulf'\) — use a new --output-dir"),
]


@pytest.mark.parametrize("kind, call, error, message", ERRORS, ids=[e[0] for e in ERRORS])
def test_bad_input_is_a_clear_error(kind, call, error, message, tmp_path, tiny_processor):
    with pytest.raises(error, match=message):
        call(tmp_path, tiny_processor.tokenizer)
