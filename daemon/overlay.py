"""Draws what the analysis saw onto a copy of the frame: faces, landmarks, head pose, gaze, objects and
the session's open events. For the live view (in a web request) and an event's evidence snapshot (on the
recorder's thread, with the event in words as a caption); never on the per-frame path."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from dataclasses import replace

import cv2
import numpy as np

from daemon.events.model import Event
from daemon.inference.analysis import Face, FrameAnalysis
from daemon.report.view import label as event_label
from daemon.report.wording import describe_evidence

# BGR
GREEN, ORANGE, RED = (80, 200, 80), (0, 160, 255), (40, 40, 220)
CYAN, BLUE, WHITE = (230, 210, 0), (230, 120, 40), (255, 255, 255)
FONT = cv2.FONT_HERSHEY_SIMPLEX


def annotate(
    image: np.ndarray, analysis: FrameAnalysis, open_events: Sequence[Event], max_width: int
) -> np.ndarray:
    """A new picture at most `max_width` wide; `image` itself is never written to."""
    scale = min(1.0, max_width / image.shape[1])
    if scale < 1:
        canvas = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    else:
        canvas = image.copy()
    face_colour = GREEN if len(analysis.faces) == 1 else ORANGE
    for face in analysis.faces:
        _draw_face(canvas, face, scale, face_colour)
    for found in analysis.objects:
        top_left = _point(found.box.x, found.box.y, scale)
        cv2.rectangle(canvas, top_left, _point(found.box.x + found.box.w, found.box.y + found.box.h, scale), BLUE, 2)
        _label(canvas, f"{found.label} {found.score:.2f}", top_left, BLUE)
    _banner(canvas, open_events)
    return canvas


def evidence_picture(image: np.ndarray, analysis: FrameAnalysis | None, event: Event, at: float) -> np.ndarray:
    """The frame an event was confirmed on (at wall-clock `at`), as its snapshot: what the analysis saw
    drawn on it (when known), the event's type above, and below, on a strip that covers none of it, its
    evidence in words with how long it had lasted then."""
    seen = image.copy() if analysis is None else annotate(image, analysis, (event,), image.shape[1])
    width = seen.shape[1]
    so_far = describe_evidence(replace(event, end=max(at, event.start)))
    # The Hershey fonts have no degree sign.
    words = f"{event_label(event.type)}: {so_far}".replace("°", " deg")
    lines = textwrap.wrap(words, max(20, width // 8))
    strip = np.full((CAPTION_LINE * len(lines) + 8, width, 3), 30, np.uint8)
    for i, line in enumerate(lines):
        cv2.putText(strip, line, (6, CAPTION_LINE * (i + 1)), FONT, 0.5, WHITE, 1, cv2.LINE_AA)
    return np.vstack((seen, strip))


CAPTION_LINE = 20  # pixels per caption line


def _draw_face(canvas: np.ndarray, face: Face, scale: float, colour: tuple[int, int, int]) -> None:
    box = face.box
    top_left = _point(box.x, box.y, scale)
    cv2.rectangle(canvas, top_left, _point(box.x + box.w, box.y + box.h, scale), colour, 2)
    if face.landmarks is not None:
        points = np.rint(face.landmarks[:, :2] * scale).astype(int)
        height, width = canvas.shape[:2]
        inside = (points[:, 0] >= 0) & (points[:, 0] < width) & (points[:, 1] >= 0) & (points[:, 1] < height)
        canvas[points[inside, 1], points[inside, 0]] = WHITE
    for x, y in face.keypoints:
        cv2.circle(canvas, _point(x, y, scale), 2, colour, -1)
    label = f"face {face.score:.2f}"
    if face.pose is not None:
        label += f"  yaw {face.pose.yaw:+.0f} pitch {face.pose.pitch:+.0f} roll {face.pose.roll:+.0f}"
    _label(canvas, label, top_left, colour)
    if face.gaze is not None and len(face.keypoints) >= 2:
        (rx, ry), (lx, ly) = face.keypoints[0], face.keypoints[1]
        between_eyes = _point((rx + lx) / 2, (ry + ly) / 2, scale)
        length = box.w * scale * 0.8
        # yaw > 0 points toward image-right, pitch > 0 up (image y grows downward)
        tip = (
            int(between_eyes[0] + length * math.sin(math.radians(face.gaze.yaw))),
            int(between_eyes[1] - length * math.sin(math.radians(face.gaze.pitch))),
        )
        cv2.arrowedLine(canvas, between_eyes, tip, CYAN, 2, tipLength=0.2)


def _banner(canvas: np.ndarray, open_events: Sequence[Event]) -> None:
    if not open_events:
        return
    text = "  ".join(sorted({event_label(event.type) for event in open_events}))
    cv2.rectangle(canvas, (0, 0), (canvas.shape[1], 26), RED, -1)
    cv2.putText(canvas, text, (6, 19), FONT, 0.6, WHITE, 1, cv2.LINE_AA)


def _label(canvas: np.ndarray, text: str, at: tuple[int, int], colour: tuple[int, int, int]) -> None:
    x, y = at[0], max(at[1] - 6, 40)  # below the events banner when the box touches the top
    cv2.putText(canvas, text, (x, y), FONT, 0.45, colour, 1, cv2.LINE_AA)


def _point(x: float, y: float, scale: float) -> tuple[int, int]:
    return round(x * scale), round(y * scale)
