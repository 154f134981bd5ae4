"""Run profiles: the ci profile and the line that says it is active."""

from arabicpeft import profiles


def test_profile_notice(monkeypatch):
    monkeypatch.setenv("ARABICPEFT_PROFILE", "ci")
    assert "not meaningful" in profiles.profile_notice() and "tiny" in profiles.profile_notice()
    monkeypatch.setenv("ARABICPEFT_PROFILE", "full")
    assert profiles.profile_notice() is None
