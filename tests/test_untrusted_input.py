"""The rules for input from outside, tested directly: bounded JSON, text made safe to log, the candidate
details shared by the web form and MQTT, and the command names the docs must list."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from daemon.candidate import IDENTIFIER_MAX, NAME_MAX, NOTES_MAX, CandidateDetails, field_problem
from daemon.compat import tomllib
from daemon.config import MqttConfig
from daemon.sync.contract import COMMAND_NAMES, REQUEST_TYPES
from daemon.untrusted import JsonBounds, UntrustedJsonError, loads_bounded, printable

REPO = Path(__file__).resolve().parents[1]
BOUNDS = JsonBounds(max_bytes=1024, max_depth=3, max_number_chars=10)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"[[[[1]]]]", "nested more than 3 deep"),
        (b'{"n": 12345678901}', "a number of 11 characters, more than 10"),
        (b'{"n": -1.2345678e10}', "a number of 13 characters, more than 10"),
        (b'{"s": "\\udc00"}', "lone UTF-16 surrogate"),
        (b'{"\\ud800": 1}', "lone UTF-16 surrogate"),
        (b'{"a": 1, "a": 2}', "the key 'a' appears twice"),
        (b'{"n": Infinity}', "Infinity is not a JSON number"),
        (b"\xc3\x28", "not UTF-8"),
        (b" " * 1025, "payload of 1025 bytes, more than 1024"),
        (b'{"a": ', "not JSON"),
    ],
)
def test_item3_bounded_json_refuses_with_the_reason(payload, reason):
    with pytest.raises(UntrustedJsonError, match=re.escape(reason)):
        loads_bounded(payload, BOUNDS)


def test_bounded_json_reads_what_fits_and_counts_no_brackets_inside_strings():
    assert loads_bounded(b'{"a": [[1]], "s": "[[[[{{{{", "e": "\\ud83d\\ude00", "n": -12.5e3}', BOUNDS) == \
        {"a": [[1]], "s": "[[[[{{{{", "e": "\U0001F600", "n": -12500.0}


def test_item3_printable_escapes_what_could_forge_a_log_line():
    assert printable("id\nINFO forged\r\x1b[2J\u202etxt.exe\ud800\x00") == \
        "id\\nINFO forged\\r\\x1b[2J\\u202etxt.exe\\ud800\\x00"
    assert printable("Zoë Ünal 张伟") == "Zoë Ünal 张伟"
    assert printable("x" * 300, limit=10) == "x" * 10 + "…"


GOOD = {"candidate_name": "Zoë O'Brien-Ünal", "candidate_id": "c-42.7:b", "exam_id": "math_101"}


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("candidate_name", "Ada\x00", "U+0000"),
        ("candidate_name", "Ada\r\nLovelace", "U+000D"),
        ("candidate_name", "Ada\u202eecalevol", "U+202E"),
        ("candidate_name", "Ada\u2066x\u2069", "U+2066"),
        ("candidate_name", "Ada\u2028Lovelace", "U+2028"),
        ("candidate_name", "Ada\x85Lovelace", "U+0085"),
        ("candidate_name", "../../etc/passwd", "'..' path steps"),
        ("notes", "see ..\\secret", "'..' path steps"),
        ("notes", "bell\x07", "U+0007"),
        ("candidate_id", "c/1", "use letters, digits"),
        ("candidate_id", "..", "'..' path steps"),
        ("exam_id", "", "required"),
        ("candidate_name", "   ", "required"),
        ("candidate_name", "x" * (NAME_MAX + 1), f"at most {NAME_MAX} characters"),
        ("candidate_id", "x" * (IDENTIFIER_MAX + 1), f"at most {IDENTIFIER_MAX} characters"),
        ("notes", "x" * (NOTES_MAX + 1), f"at most {NOTES_MAX} characters"),
    ],
)
def test_item5_one_rule_for_candidate_details(field, value, problem):
    assert problem in field_problem(field, value)
    with pytest.raises(ValueError, match=re.escape(field)):
        CandidateDetails(**GOOD | {field: value})


def test_candidate_details_that_fit_are_trimmed_and_notes_keep_their_lines():
    details = CandidateDetails(**GOOD | {"candidate_name": "  Ada  ", "notes": "seat 4\r\n\tlate by 5 min"})
    assert details.info().candidate_name == "Ada" and details.notes == "seat 4\r\n\tlate by 5 min"
    assert all(field_problem(name, value) is None for name, value in GOOD.items())


def test_command_names_derive_from_the_request_types_and_the_docs_list_them():
    assert COMMAND_NAMES == ("ping", "snapshot", "start_session", "stop_session")
    assert len(REQUEST_TYPES) == len(COMMAND_NAMES)
    assert tuple(MqttConfig().commands) == COMMAND_NAMES
    asyncapi = (REPO / "docs/asyncapi.yaml").read_text()
    enum = re.search(r"command: \{enum: \[([^\]]*)\]\}", asyncapi).group(1)
    assert tuple(name.strip() for name in enum.split(",")) == COMMAND_NAMES
    readme_row = next(line for line in (REPO / "README.md").read_text().splitlines() if line.startswith("| `…/cmd`"))
    assert tuple(re.findall(r'"(\w+)"', readme_row.split('"command":')[1].split(",")[0])) == COMMAND_NAMES
    example = tomllib.loads((REPO / "config/proctord.example.toml").read_text())
    assert tuple(example["mqtt"]["commands"]) == COMMAND_NAMES


def test_the_asyncapi_candidate_fields_match_the_model():
    asyncapi = (REPO / "docs/asyncapi.yaml").read_text().split("\n    Command:\n")[-1]  # the schema
    schema = CandidateDetails.model_json_schema()
    for name, rules in schema["properties"].items():
        line = re.search(rf"^\s+{name}: \{{(.*)\}}$", asyncapi, re.MULTILINE).group(1)
        for key in ("minLength", "maxLength", "pattern"):
            if key in rules:
                assert f"{key}: {json.dumps(rules[key])}" in line or f"{key}: {rules[key]}" in line, (name, key)
