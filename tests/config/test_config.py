"""Config layering and validation: every error names the key, the bad value and the rule."""

from __future__ import annotations

import pytest

from axd.config import schema as config
from axd.config.schema import ConfigError
from tests.conftest import REPO


def test_documented_defaults_file_matches_the_schema():
    """config/axd.toml is the user's reference; it must list exactly what axd accepts."""
    assert (REPO / "config" / "axd.toml").read_text() == config.render_defaults()


def test_documented_defaults_file_loads_to_the_defaults(tmp_path):
    cfg = config.load(str(REPO / "config" / "axd.toml"), env={})
    assert dict(cfg.values) == dict(config.defaults().values)


def test_missing_user_file_means_defaults(tmp_path):
    cfg = config.load(str(tmp_path / "absent.toml"), env={})
    assert cfg.files == ()
    assert cfg["daemon.log_level"] == "info"
    assert cfg.sources["daemon.log_level"] == "default"


def test_named_file_must_exist(tmp_path):
    with pytest.raises(ConfigError, match="cannot be read"):
        config.load(str(tmp_path / "absent.toml"), env={}, user_file_required=True)


def test_file_then_env_layering(tmp_path):
    f = tmp_path / "axd.toml"
    f.write_text(
        '[daemon]\nlog_level = "debug"\nshutdown_timeout = "250ms"\n[api]\nmax_body_size = "2MiB"\n'
    )
    cfg = config.load(str(f), env={"AXD_DAEMON_LOG_LEVEL": "warning", "HOME": "/x"})
    assert cfg["daemon.log_level"] == "warning"
    assert cfg.sources["daemon.log_level"] == "env AXD_DAEMON_LOG_LEVEL"
    assert cfg["daemon.shutdown_timeout"] == pytest.approx(0.25)
    assert cfg.sources["daemon.shutdown_timeout"] == str(f)
    assert cfg["api.max_body_size"] == 2 * 1024 * 1024
    assert cfg.display("api.max_body_size") == "2MiB"
    assert cfg.files == (str(f),)


def test_every_problem_is_reported_with_key_value_and_rule(tmp_path):
    f = tmp_path / "axd.toml"
    f.write_text('[daemon]\nlog_level = "loud"\n[events]\nhistory = -5\nqueue_size = "many"\n')
    with pytest.raises(ConfigError) as info:
        config.load(str(f), env={})
    by_key = {p.key: p for p in info.value.problems}
    assert set(by_key) == {"daemon.log_level", "events.history", "events.queue_size"}
    assert by_key["daemon.log_level"].value == "loud"
    assert "debug, info, warning, error" in by_key["daemon.log_level"].allowed
    assert "at least 0" in by_key["events.history"].allowed
    assert "whole number" in by_key["events.queue_size"].allowed
    assert by_key["events.history"].source == str(f)
    message = str(info.value)
    assert "daemon.log_level = 'loud'" in message and str(f) in message


def test_unknown_keys_are_errors_with_a_suggestion(tmp_path):
    f = tmp_path / "axd.toml"
    f.write_text("[daemon]\nshutdown_timout = 3\n[nonsense]\nx = 1\n")
    with pytest.raises(ConfigError) as info:
        config.load(str(f), env={})
    allowed = {p.key: p.allowed for p in info.value.problems}
    assert "did you mean daemon.shutdown_timeout" in allowed["daemon.shutdown_timout"]
    assert "known sections" in allowed["nonsense.x"]


def test_toml_syntax_errors_name_the_file(tmp_path):
    f = tmp_path / "axd.toml"
    f.write_text("[daemon\nlog_level = 1\n")
    with pytest.raises(ConfigError) as info:
        config.load(str(f), env={})
    assert "not valid TOML" in str(info.value) and str(f) in str(info.value)


@pytest.mark.parametrize(
    ("name", "value", "rule"),
    [
        ("AXD_DAEMON_LOG_LEVEL", "loud", "one of"),
        ("AXD_EVENTS_HISTORY", "ten", "whole number"),
        ("AXD_API_MAX_BODY_SIZE", "12 parsecs", "a size"),
        ("AXD_DAEMON_SHUTDOWN_TIMOUT", "3", "did you mean AXD_DAEMON_SHUTDOWN_TIMEOUT"),
    ],
)
def test_bad_environment_values_are_errors(name, value, rule):
    with pytest.raises(ConfigError) as info:
        config.load(None, env={name: value})
    assert rule in str(info.value)
    assert value in str(info.value)


def test_unrelated_axd_variables_are_not_settings():
    cfg = config.load(None, env={"AXD_SOCKET": "/x", "AXD_STATE_DIR": "/y", "AXD_CONFIG": "/z"})
    assert cfg.sources["daemon.log_level"] == "default"


def test_validate_text_checks_one_document():
    assert config.validate_text('[daemon]\nlog_level = "debug"\n', "a.toml") == []
    problems = config.validate_text("[api]\nmax_body_size = 10\n", "a.toml")
    assert [p.key for p in problems] == ["api.max_body_size"]
    assert "at least 1KiB" in problems[0].allowed


def test_changed_keys():
    a = config.defaults()
    b = config.load(None, env={"AXD_EVENTS_HISTORY": "5"})
    assert b.changed_keys(a) == ["events.history"]
