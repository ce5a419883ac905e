"""The candidate details a session starts with, and the one rule for what they may hold.

The web start form (webui/forms.py) and the MQTT start_session command (daemon/sync/contract.py) both
check them here. The values end up in file names, the report, MQTT payloads, logs and exam-board
systems, so they stay plain: no control characters (a CR/LF forges a log line, NUL cuts a C string),
no bidi overrides (U+202E makes "exe.txt" read "txt.exe"), no path steps ("../"), bounded lengths.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
)

from daemon.store.records import CandidateInfo
from daemon.untrusted import UNSAFE_IN_LINE, UNSAFE_IN_TEXT

NAME_MAX = 120
IDENTIFIER_MAX = 64
NOTES_MAX = 1000

_PATH_STEP = re.compile(r"\.\.[/\\]|[/\\]\.\.$|^\.\.$")


def _plain(unsafe: re.Pattern):
    def check(value: str) -> str:
        if found := unsafe.search(value):
            raise ValueError(
                f"the character U+{ord(found.group()):04X} is not allowed (a control or direction character)"
            )
        if _PATH_STEP.search(value):
            raise ValueError("'..' path steps are not allowed")
        return value

    return check


_Stripped = StringConstraints(strip_whitespace=True)
Name = Annotated[str, _Stripped, Field(min_length=1, max_length=NAME_MAX), AfterValidator(_plain(UNSAFE_IN_LINE))]
Identifier = Annotated[
    str, _Stripped, Field(min_length=1, max_length=IDENTIFIER_MAX, pattern=r"^[A-Za-z0-9_.:-]+$"),
    AfterValidator(_plain(UNSAFE_IN_LINE)),
]
Notes = Annotated[str, _Stripped, Field(max_length=NOTES_MAX), AfterValidator(_plain(UNSAFE_IN_TEXT))]


class CandidateDetails(BaseModel):
    """Who sits the exam, and which exam. Every field but `notes` is required."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    candidate_name: Name
    candidate_id: Identifier
    exam_id: Identifier
    notes: Notes = ""

    def info(self) -> CandidateInfo:
        return CandidateInfo(self.candidate_name, self.candidate_id, self.exam_id, self.notes)


_FIELDS = {name: TypeAdapter(Annotated[(field.annotation, *field.metadata)])
           for name, field in CandidateDetails.model_fields.items()}


def field_problem(name: str, value: str) -> str | None:
    """Why `value` is refused for the field `name`, None when it fits (for forms that check field by field)."""
    try:
        _FIELDS[name].validate_python(value, strict=True)
    except ValidationError as exc:
        return "; ".join(problem_text(error) for error in exc.errors())
    return None


def problem_text(error) -> str:
    """A pydantic error of these fields in the words both the form and a command's answer use."""
    match error["type"]:
        case "string_pattern_mismatch":
            return "use letters, digits and _ . : - only (no spaces)"
        case "string_too_short":
            return "required"
        case "string_too_long":
            return f"at most {error['ctx']['max_length']} characters"
    return error["msg"].removeprefix("Value error, ")
