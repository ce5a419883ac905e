"""The forms, with their validation: what a technician may type, and the message when it does not fit.

The candidate fields follow the one rule daemon/candidate.py keeps for the web form and the MQTT
start_session command alike."""

from __future__ import annotations

from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import PasswordField, StringField, TextAreaField
from wtforms.validators import InputRequired, Length, ValidationError

from daemon.candidate import field_problem


class _CandidateRule:
    """The candidate field's rule, as a WTForms validator."""

    def __init__(self, field: str):
        self._field = field

    def __call__(self, form, field) -> None:
        if problem := field_problem(self._field, field.data or ""):
            raise ValidationError(problem[0].upper() + problem[1:] + ".")


def _strip(value: str | None) -> str | None:
    return value.strip() if isinstance(value, str) else value


def _candidate_field(kind, label: str, name: str):
    return kind(label, [_CandidateRule(name)], filters=[_strip])


class LoginForm(FlaskForm):
    password = PasswordField("Password", [InputRequired("Enter the technician password."), Length(max=1024)])


class StartSessionForm(FlaskForm):
    candidate_name = _candidate_field(StringField, "Candidate name", "candidate_name")
    candidate_id = _candidate_field(StringField, "Candidate id", "candidate_id")
    exam_id = _candidate_field(StringField, "Exam", "exam_id")
    notes = _candidate_field(TextAreaField, "Notes", "notes")
    # identity checks on: checked and embedded by the daemon (daemon/inference/reference_photo.py)
    reference_photo = FileField("Reference photo (optional: JPEG or PNG of the candidate alone)")
