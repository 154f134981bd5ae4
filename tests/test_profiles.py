"""Run profiles: the ci profile and the line that says it is active."""

import pytest

from arabicpeft import profiles


def test_profile_notice(monkeypatch):
    monkeypatch.setenv("ARABICPEFT_PROFILE", "ci")
    assert "not meaningful" in profiles.profile_notice() and "tiny" in profiles.profile_notice()
    monkeypatch.setenv("ARABICPEFT_PROFILE", "full")
    assert profiles.profile_notice() is None


def _profile(name):
    import os

    before = os.environ.get(profiles._ENV_VAR)
    os.environ[profiles._ENV_VAR] = name
    try:
        return profiles.current()
    finally:
        os.environ.pop(profiles._ENV_VAR) if before is None else os.environ.__setitem__(profiles._ENV_VAR, before)


# (kind, call(tmp_path, tokenizer), exception, message: what was wrong ... what to do)
ERRORS = [
    ("unknown run profile", lambda t, k: _profile("gpu"), ValueError, r"'gpu' is not a profile; choose one of full, ci"),
]


@pytest.mark.parametrize("kind, call, error, message", ERRORS, ids=[e[0] for e in ERRORS])
def test_bad_input_is_a_clear_error(kind, call, error, message, tmp_path, tiny_processor):
    with pytest.raises(error, match=message):
        call(tmp_path, tiny_processor.tokenizer)
