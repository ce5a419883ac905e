"""Tests for configuration parsing (daemon.config) and the `proctord check-config` command."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import REPO, run_proctord

from daemon.config import Config, ConfigError, RuleTiming, load_config, parse_config

EXAMPLE = REPO / "config" / "proctord.example.toml"


def problems(text: str) -> list[str]:
    """The problem lines a config text is refused with (fails the test if it is accepted)."""
    with pytest.raises(ConfigError) as refused:
        parse_config(text)
    return refused.value.problems


def only_problem(text: str) -> str:
    [problem] = problems(text)
    return problem


def write(tmp_path: Path, text: str, name: str = "proctord.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# --- documented and embedded defaults --------------------------------------------------------------


def test_example_file_documents_the_real_defaults():
    assert load_config(EXAMPLE) == Config()


def test_embedded_default_parses_into_the_demo_setup(monkeypatch):
    monkeypatch.setenv("PROCTORD_SAMPLE_VIDEO", "/media/sample.mp4")

    config = load_config()

    assert (config.camera.kind, config.camera.path) == ("file", "/media/sample.mp4")
    assert config.session.auto_start is True
    assert config.rules == Config().rules


def test_empty_file_is_all_defaults():
    assert parse_config("") == Config()


# --- refused values --------------------------------------------------------------------------------


def test_unknown_key_names_the_dotted_key_and_the_allowed_keys():
    problem = only_problem("[rules.no_face]\nonset = 3\n")
    assert problem.startswith("rules.no_face.onset: unknown key")
    assert "allowed here: min_duration_s, onset_s, release_s, severity, weight" in problem


def test_unknown_section_lists_the_sections():
    problem = only_problem("[camra]\nfps = 10\n")
    assert problem.startswith("camra: unknown key")
    assert "camera, gpio, inference, kiosk, mqtt, paths" in problem
    assert f"(allowed here: {', '.join(sorted(Config.model_fields))})" in problem


def test_negative_fps_names_the_key_and_the_value():
    problem = only_problem("[camera]\nfps = -5\n")
    assert problem.startswith("camera.fps: -5 is not allowed")
    assert "greater than 0" in problem


@pytest.mark.parametrize("name", ["a/b", "+", "#", "kiosk 1", ""])
def test_kiosk_name_must_be_a_plain_mqtt_topic_segment(name):
    assert only_problem(f'[kiosk]\nname = "{name}"\n').startswith(f"kiosk.name: {name!r} is not allowed")


@pytest.mark.parametrize("key", ["kiosk.site", "mqtt.topic_prefix"])
def test_other_topic_segments_refuse_separators(key):
    section, name = key.split(".")
    assert only_problem(f'[{section}]\n{name} = "proctor/+"\n').startswith(f"{key}: 'proctor/+' is not allowed")


def test_wrong_type_names_the_key_and_the_value():
    problem = only_problem('[camera]\nwidth = "wide"\n')
    assert problem.startswith("camera.width: 'wide' is not allowed")
    assert "integer" in problem


def test_value_where_a_section_belongs_is_refused():
    assert only_problem("camera = 5\n").startswith("camera: 5 is not allowed")


def test_every_problem_gets_its_own_line():
    found = problems('[camera]\nfps = 0\nwidth = 10\n[mqtt]\nport = 70000\n[rules.no_face]\nseverity = "huge"\n')
    assert sorted(line.split(":")[0] for line in found) == [
        "camera.fps", "camera.width", "mqtt.port", "rules.no_face.severity",
    ]


def test_invalid_toml_is_one_clear_problem():
    problem = only_problem("[camera\nfps = 10\n")
    assert problem.startswith("not valid TOML:")
    assert "line 1" in problem


def test_file_source_needs_a_path():
    problem = only_problem('[camera]\nkind = "file"\npath = ""\n')
    assert problem.startswith("camera.path: '' is not allowed: a device index, device path or video file")


def test_quoted_numbers_and_booleans_are_typos_not_values():
    found = problems('[camera]\nrealtime = "yes"\nfps = "10"\n')
    assert "camera.fps: '10' is not allowed: Input should be a valid number" in found
    assert "camera.realtime: 'yes' is not allowed: Input should be a valid boolean" in found


def test_an_unset_environment_variable_is_named(monkeypatch):
    monkeypatch.delenv("PROCTORD_TEST_UNSET", raising=False)
    problem = only_problem('[camera]\npath = "${PROCTORD_TEST_UNSET}/a.mp4"\n')
    assert problem == (
        "camera.path: '${PROCTORD_TEST_UNSET}/a.mp4' names the environment variable PROCTORD_TEST_UNSET,"
        " which is not set"
    )


def test_an_unset_environment_variable_can_fall_back(monkeypatch):
    monkeypatch.delenv("PROCTORD_TEST_UNSET", raising=False)
    assert parse_config('[camera]\npath = "${PROCTORD_TEST_UNSET:-/dev/video2}"\n').camera.path == "/dev/video2"


def test_missing_file_is_a_config_error_naming_the_path(tmp_path):
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as refused:
        load_config(missing)
    assert refused.value.source == str(missing)
    assert refused.value.problems == ["cannot read the file: No such file or directory"]


# --- rules -----------------------------------------------------------------------------------------


def test_partial_rule_table_keeps_the_rule_defaults():
    config = parse_config("[rules.no_face]\nonset_s = 3\n")

    assert config.rules.no_face == RuleTiming(onset_s=3.0, release_s=1.0, severity="high", weight=1.0)
    assert config.rules.multiple_faces == Config().rules.multiple_faces


def test_rule_timings_cannot_be_negative():
    assert only_problem("[rules.multiple_faces]\nrelease_s = -1\n").startswith(
        "rules.multiple_faces.release_s: -1 is not allowed"
    )


# --- environment -----------------------------------------------------------------------------------


def test_strings_expand_environment_variables(monkeypatch):
    monkeypatch.setenv("PROCTORD_TEST_SITE", "hall-b")
    monkeypatch.setenv("PROCTORD_TEST_DIR", "/srv/proctord")

    config = parse_config('[kiosk]\nsite = "${PROCTORD_TEST_SITE}"\n[paths]\ndata_dir = "${PROCTORD_TEST_DIR}/data"\n')

    assert config.kiosk.site == "hall-b"
    assert config.data_dir == Path("/srv/proctord/data")


def test_expanded_values_are_validated_too(monkeypatch):
    monkeypatch.setenv("PROCTORD_TEST_KIOSK", "a/b")
    assert only_problem('[kiosk]\nname = "${PROCTORD_TEST_KIOSK}"\n').startswith("kiosk.name: 'a/b'")


@pytest.fixture
def no_dir_env(monkeypatch, tmp_path):
    """No systemd or XDG directories in the environment, and a throwaway home."""
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return monkeypatch


def test_data_dir_defaults_to_the_systemd_state_directory(no_dir_env):
    no_dir_env.setenv("STATE_DIRECTORY", "/var/lib/proctord:/var/lib/other")
    no_dir_env.setenv("XDG_DATA_HOME", "/ignored")

    config = Config()

    assert config.data_dir == Path("/var/lib/proctord")
    assert config.database_path == Path("/var/lib/proctord/proctord.db")
    assert config.models_dir == Path("/var/lib/proctord/models")


def test_data_dir_falls_back_to_xdg_data_home(no_dir_env, tmp_path):
    no_dir_env.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert Config().data_dir == tmp_path / "xdg" / "proctord"


def test_data_dir_falls_back_to_the_home_data_directory(no_dir_env, tmp_path):
    assert Config().data_dir == tmp_path / "home" / ".local" / "share" / "proctord"


def test_configured_paths_win_over_the_environment(no_dir_env):
    no_dir_env.setenv("STATE_DIRECTORY", "/var/lib/proctord")

    config = parse_config('[paths]\ndata_dir = "/data"\nmodels_dir = "/opt/models"\n')

    assert (config.data_dir, config.models_dir, config.database_path) == (
        Path("/data"), Path("/opt/models"), Path("/data/proctord.db"),
    )


# --- proctord check-config as a process ------------------------------------------------------------


def test_check_config_lists_every_problem_and_exits_2(tmp_path):
    path = write(tmp_path, "[camera]\nfsp = 10\nfps = -5\n")

    result = run_proctord("check-config", str(path), timeout=60)

    assert result.returncode == 2
    lines = result.stderr.splitlines()
    typo = [line for line in lines if "camera.fsp" in line]
    negative = [line for line in lines if "camera.fps" in line]
    assert len(typo) == 1 and len(negative) == 1 and typo != negative
    assert typo[0].startswith(f"{path}: camera.fsp: unknown key")
    assert negative[0].startswith(f"{path}: camera.fps: -5 is not allowed")
    assert "Traceback" not in result.stderr


def test_check_config_accepts_a_valid_file(tmp_path):
    path = write(tmp_path, '[camera]\nfps = 10\n[kiosk]\nname = "kiosk-2"\n')
    result = run_proctord("check-config", str(path), timeout=60)

    assert result.returncode == 0, result.stderr
    assert "valid" in result.stdout


def test_check_config_accepts_the_example_file():
    assert run_proctord("check-config", str(EXAMPLE), timeout=60).returncode == 0


def test_check_config_on_a_missing_file_exits_2_with_one_clear_line(tmp_path):
    missing = tmp_path / "nope.toml"

    result = run_proctord("check-config", str(missing), timeout=60)

    assert result.returncode == 2
    assert result.stderr.strip() == f"{missing}: cannot read the file: No such file or directory"
