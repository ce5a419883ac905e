"""Evidence in plain language: one sentence per event, for the session page, the HTML and PDF reports and
the CSV (report.json keeps the raw figures).

Each event type has one wording (WORDINGS): what was seen, and the limit it crossed. `describe_evidence`
adds how long it lasted: "head turned 40.2° to the candidate's right (image left) of neutral for 5.2 s
(limit 35°)". Evidence recorded by an older version may lack a figure: the wording then falls back to the
rule's threshold as recorded.
"""

from __future__ import annotations

from collections.abc import Callable

from daemon.events.attention import DOWN, SIDE_WORDS, UP
from daemon.events.model import Event

# What was seen, and the limit it crossed ("" when the evidence holds none).
Wording = Callable[[dict], tuple[str, str]]


def _number(value: float) -> str:
    return f"{value:g}" if abs(value) >= 0.01 or value == 0 else f"{value:.2g}"


def _limit(evidence: dict, key: str = "limit", unit: str = "") -> str:
    """"limit 0.2", from the evidence's numeric limit, else its recorded threshold."""
    if key in evidence:
        return f"limit {_number(evidence[key])}{unit}"
    return evidence.get("threshold", "")


def _no_face(evidence: dict) -> tuple[str, str]:
    return "no face in view", ""


def _multiple_faces(evidence: dict) -> tuple[str, str]:
    scores = ", ".join(f"{score:.2f}" for score in evidence.get("scores", []))
    return f"{evidence.get('faces', 'several')} faces in view" + (f" (detector scores {scores})" if scores else ""), ""


def _looking(evidence: dict) -> tuple[str, str]:
    """looking_away and looking_down: the angle that decided it, from the calibrated neutral."""
    side, cause = evidence.get("direction"), evidence.get("cause", "")
    head = evidence.get("head_from_neutral_deg", {})
    gaze = evidence.get("gaze_deg")
    beyond = evidence.get("beyond_deg")
    where = SIDE_WORDS.get(side, str(side))
    if cause == "head turn" and "yaw" in head:
        value = abs(head["yaw"])
        limit = f"limit {value - beyond:.0f}°" if beyond is not None else evidence.get("threshold", "")
        return f"head turned {value:.1f}° {where} of neutral", limit
    if cause == "head raised" and "pitch" in head:
        limit = f"limit {head['pitch'] - beyond:.0f}°" if beyond is not None else evidence.get("threshold", "")
        return f"head raised {head['pitch']:.1f}° above neutral", limit
    if side == DOWN and "pitch" in head:
        return (f"head {-head['pitch']:.1f}° below neutral with the gaze below the screen",
                _limit(evidence, "head_limit_deg", "°"))
    if gaze is not None:
        value = gaze["pitch"] if side in (UP, DOWN) else gaze["yaw"]
        past = f", {beyond:.1f}° past the screen's edge plus margin" if beyond is not None else ""
        return f"gaze {abs(value):.1f}° {where}{past}", (
            f"limit {abs(value) - beyond:.1f}°" if beyond is not None else evidence.get("threshold", "")
        )
    return evidence.get("description", "attention off the screen"), evidence.get("threshold", "")


def _repeated_glances(evidence: dict) -> tuple[str, str]:
    lengths = evidence.get("glance_s", [])
    what = evidence.get("description", f"{len(lengths)} glances off the screen")
    if lengths:
        what += " (" + ", ".join(f"{length:.1f}" for length in lengths) + " s long)"
    limit = (f"limit {evidence['limit']} glances to one side within {evidence['window_s']:g} s"
             if "limit" in evidence and "window_s" in evidence else evidence.get("threshold", ""))
    return what, limit


def _eyes_closed(evidence: dict) -> tuple[str, str]:
    return f"eyes closed (openness {evidence.get('eye_openness', 0):.2f})", _limit(evidence)


def _talking(evidence: dict) -> tuple[str, str]:
    window = evidence.get("window_s")
    over = f" over {window:g} s" if window is not None else ""
    return f"mouth moving (its openness varied by {evidence.get('mouth_std', 0):.3f}{over})", _limit(evidence)


def _object(evidence: dict) -> tuple[str, str]:
    label = evidence.get("label", "object")
    count = evidence.get("detections", 1)
    many = f", {count} of them" if count > 1 else ""
    return f"a {label} in view (detector score {evidence.get('score', 0):.2f}{many})", _limit(evidence)


def _extra_person(evidence: dict) -> tuple[str, str]:
    persons = evidence.get("persons", 1)
    return ((f"a person other than the candidate in view ({persons} person{'s' if persons != 1 else ''} seen, "
            f"detector score {evidence.get('score', 0):.2f})"), _limit(evidence))


def _camera_lost(evidence: dict) -> tuple[str, str]:
    return "no frame from the camera", ""


def _camera_covered(evidence: dict) -> tuple[str, str]:
    what = (f"the picture dark or featureless (brightness {evidence.get('brightness', 0):.0f}, "
            f"contrast {evidence.get('contrast', 0):.1f})")
    if "brightness_limit" in evidence and "contrast_limit" in evidence:
        return what, (f"limits: brightness {_number(evidence['brightness_limit'])}, "
                      f"contrast {_number(evidence['contrast_limit'])}")
    return what, evidence.get("threshold", "")


def _camera_blurred(evidence: dict) -> tuple[str, str]:
    return ((f"the picture out of focus (sharpness {_number(evidence.get('relative_sharpness', 0))} "
            "relative to its contrast)"), _limit(evidence))


def _camera_frozen(evidence: dict) -> tuple[str, str]:
    return f"the picture not changing (change {_number(evidence.get('change', 0))})", _limit(evidence)


def _camera_moved(evidence: dict) -> tuple[str, str]:
    return ((f"the camera's view moved ({_number(evidence.get('view_shift', 0))} from the session's first view, "
            "0 same, 1 nothing in common)"), _limit(evidence))


def _heard(evidence: dict) -> str:
    return (f"voice probability {evidence.get('speech_probability', 0):.2f}, "
            f"level {evidence.get('level_dbfs', 0):.0f} dBFS")


def _speech(evidence: dict) -> tuple[str, str]:
    return f"speech heard ({_heard(evidence)})", ""


def _other_voice(evidence: dict) -> tuple[str, str]:
    mouth = evidence.get("mouth", "not seen moving")
    return f"a voice while the candidate's mouth was {mouth} ({_heard(evidence)})", ""


def _microphone_lost(evidence: dict) -> tuple[str, str]:
    return "no sound from the microphone", ""


def _identity_mismatch(evidence: dict) -> tuple[str, str]:
    return ((f"the face in view unlike the candidate's {evidence.get('reference', 'check-in')} reference "
             f"(similarity {evidence.get('similarity', 0):.2f})"), _limit(evidence))


# One wording per event type the rules raise; tests/test_wording.py walks the rule types against it.
WORDINGS: dict[str, Wording] = {
    "no_face": _no_face,
    "multiple_faces": _multiple_faces,
    "looking_away": _looking,
    "looking_down": _looking,
    "repeated_glances": _repeated_glances,
    "eyes_closed": _eyes_closed,
    "talking": _talking,
    "phone": _object,
    "book": _object,
    "extra_person": _extra_person,
    "camera_lost": _camera_lost,
    "camera_covered": _camera_covered,
    "camera_blurred": _camera_blurred,
    "camera_frozen": _camera_frozen,
    "camera_moved": _camera_moved,
    "speech": _speech,
    "other_voice": _other_voice,
    "microphone_lost": _microphone_lost,
    "identity_mismatch": _identity_mismatch,
}


def describe_evidence(event: Event) -> str:
    """The event's evidence as one sentence: what was seen, for how long, and the limit it crossed."""
    wording = WORDINGS.get(event.type)
    if wording is None:  # a type this version does not know (a newer kiosk's database)
        what, limit = event.type.replace("_", " "), event.evidence.get("threshold", "")
    else:
        what, limit = wording(event.evidence)
    lasted = ", still going" if event.duration is None else f" for {event.duration:.1f} s"
    return f"{what}{lasted}" + (f" ({limit})" if limit else "")
