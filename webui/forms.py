"""The forms, with their validation: what a technician may type, and the message when it does not fit.

The candidate fields follow the one rule daemon/candidate.py keeps for the web form and the MQTT
start_session command alike."""

from __future__ import annotations

from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from markupsafe import Markup, escape
from wtforms import DateField, FloatField, Form, IntegerField, PasswordField, StringField, TextAreaField
from wtforms.validators import (
    AnyOf,
    DataRequired,
    InputRequired,
    Length,
    NumberRange,
    Optional,
    ValidationError,
)
from wtforms.widgets import html_params

from daemon.candidate import field_problem
from daemon.report.overview import SORTS, SessionQuery
from daemon.report.view import review_state
from daemon.review import NOTE_MAX, REMARKS_MAX, ReviewState, Verdict, text_problem


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
    user = StringField("User name", [InputRequired("Enter your user name."), Length(max=64)], filters=[_strip])
    password = PasswordField("Password", [InputRequired("Enter your password."), Length(max=1024)])


class StartSessionForm(FlaskForm):
    candidate_name = _candidate_field(StringField, "Candidate name", "candidate_name")
    candidate_id = _candidate_field(StringField, "Candidate id", "candidate_id")
    exam_id = _candidate_field(StringField, "Exam", "exam_id")
    notes = _candidate_field(TextAreaField, "Notes", "notes")
    # identity checks on: checked and embedded by the daemon (daemon/inference/reference_photo.py)
    reference_photo = FileField("Reference photo (optional: JPEG or PNG of the candidate alone)")


def _select(field, **kwargs) -> Markup:
    options = "".join(
        f'<option value="{escape(value)}"{" selected" if value == field.data else ""}>{escape(label)}</option>'
        for value, label in field.options.items()
    )
    return Markup(f"<select {html_params(name=field.name, id=kwargs.pop('id', field.id), **kwargs)}>{options}</select>")


class ChoiceField(StringField):
    """One of `options` ({value: label}, drawn as a <select>); another value is refused naming the allowed
    ones. Not WTForms' SelectField: its (value, label) choices are deprecated from 3.3, and the SelectChoice
    replacing them is missing from 3.2 (the Python 3.10 lock)."""

    widget = staticmethod(_select)

    def __init__(self, label: str, options: dict[str, str], default: str = "", **kwargs):
        allowed = ", ".join(repr(value) for value in options)
        super().__init__(label, [AnyOf(list(options), f"Choose one of {allowed}.")], default=default, **kwargs)
        self.options = options


class SessionListForm(Form):
    """The sessions list's filter and order, read from the query string (a GET form: linkable, no CSRF)."""

    sort = ChoiceField("Order by", {name: sort.label for name, sort in SORTS.items()}, default="priority")
    order = ChoiceField("Direction", {"asc": "ascending", "desc": "descending"}, default="asc")
    state = ChoiceField("State", {"": "any", "running": "running", "completed": "completed",
                                  "interrupted": "interrupted"})
    review = ChoiceField("Review", {"": "any"} | {s.value: review_state(s.value) for s in ReviewState})
    candidate = StringField("Candidate", [Optional(), Length(max=120)], filters=[_strip])
    exam = StringField("Exam", [Optional(), Length(max=64)], filters=[_strip])
    since = DateField("From", [Optional()])
    until = DateField("To", [Optional()])
    max_score = FloatField("Score at most", [Optional(), NumberRange(0, 100)])
    min_high = IntegerField("High-severity flags at least", [Optional(), NumberRange(0)])
    page = IntegerField("Page", [Optional(), NumberRange(1)], default=1)

    def query(self) -> SessionQuery:
        return SessionQuery(
            sort=self.sort.data, descending=self.order.data == "desc", state=self.state.data,
            review=self.review.data, candidate=self.candidate.data or "", exam=self.exam.data or "",
            since=self.since.data, until=self.until.data, max_score=self.max_score.data, min_high=self.min_high.data,
        )


class _TextRule:
    """daemon/review.py's rule for a note or the remarks, as a WTForms validator."""

    def __init__(self, limit: int):
        self._limit = limit

    def __call__(self, form, field) -> None:
        if problem := text_problem(field.data or "", self._limit):
            raise ValidationError(problem[0].upper() + problem[1:] + ".")


class VerdictForm(FlaskForm):
    verdict = ChoiceField("Verdict", {v.value: v.value for v in Verdict})
    note = TextAreaField("Note", [_TextRule(NOTE_MAX)], filters=[_strip])


class NoteForm(FlaskForm):
    text = TextAreaField("Note", [DataRequired("Write the note first."), _TextRule(NOTE_MAX)], filters=[_strip])


class RemarksForm(FlaskForm):
    remarks = TextAreaField("Final remarks", [_TextRule(REMARKS_MAX)], filters=[_strip])
    action = ChoiceField("Then", {"save": "save", "reviewed": "mark reviewed", "reopen": "reopen"}, default="save")
