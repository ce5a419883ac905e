"""The forms, with their validation: what a technician may type, and the message when it does not fit."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField, TextAreaField
from wtforms.validators import DataRequired, InputRequired, Length, Regexp

# Identifiers end up in file names, MQTT payloads and exam-board systems: keep them plain.
_IDENTIFIER = Regexp(r"^[A-Za-z0-9_.:-]*$", message="Use letters, digits and _ . : - only (no spaces).")
_PRINTABLE = Regexp(r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$", message="Control characters are not allowed.")


def _strip(value: str | None) -> str | None:
    return value.strip() if isinstance(value, str) else value


class LoginForm(FlaskForm):
    password = PasswordField("Password", [InputRequired("Enter the technician password."), Length(max=1024)])


class StartSessionForm(FlaskForm):
    candidate_name = StringField(
        "Candidate name", [DataRequired("The candidate's name is required."), Length(max=120), _PRINTABLE],
        filters=[_strip],
    )
    candidate_id = StringField(
        "Candidate id", [DataRequired("The candidate id is required."), Length(max=64), _IDENTIFIER],
        filters=[_strip],
    )
    exam_id = StringField(
        "Exam", [DataRequired("The exam id is required."), Length(max=64), _IDENTIFIER], filters=[_strip]
    )
    notes = TextAreaField("Notes", [Length(max=1000), _PRINTABLE], filters=[_strip])
