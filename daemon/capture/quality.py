"""Tamper measurements on the picture itself, cheap enough for every frame (on the capture thread).

Every figure is taken on a grey copy scaled to MEASURE_WIDTH pixels wide (aspect kept), so it does not
depend on the camera's resolution. The thresholds the camera_* rules apply to them, with the ranges
measured on the shared videos (bench/bench_capture.py prints the table), are the rules' config fields
in daemon/config.py, so they are written once.

- brightness: mean luma, 0..255.
- contrast: standard deviation of luma.
- sharpness: variance of the Laplacian. It falls with defocus but also with exposure (it scales with
  contrast squared), so the blur rule compares sharpness / contrast**2.
- change: mean absolute luma difference to the previous captured frame, 0..255 (0 on the first). A
  repeated (frozen) picture gives exactly 0.
- view_shift: how much of the session's reference view is gone, 0 (same view) .. 1 (nothing in common).
  The reference (taken when a session starts) and the current picture are cut into an 8 x 6 grid; the
  border cells (top row and both side columns: the room behind the candidate, not the candidate) that
  have texture in the reference are compared by normalised correlation, and view_shift is the share of
  them that no longer match. None until a reference is taken, or when the reference has no texture to
  compare (a bare wall, a covered lens).
"""

from __future__ import annotations

import cv2
import numpy as np

from daemon.capture.frame import FrameQuality

MEASURE_WIDTH = 160
GRID_COLUMNS, GRID_ROWS = 8, 6
# A reference cell flatter than this (luma standard deviation) has nothing to recognise it by.
MIN_CELL_TEXTURE = 4.0
# Cells whose normalised correlation with the reference is above this still show the same thing.
SAME_CELL_CORRELATION = 0.6
# Fewer textured border cells than this: compare all textured cells instead.
MIN_BORDER_CELLS = 3

_BORDER = np.zeros((GRID_ROWS, GRID_COLUMNS), bool)
_BORDER[0, :] = _BORDER[:, 0] = _BORDER[:, -1] = True


class QualityMeter:
    """Measures each frame against the previous one and against the reference view.

    Not thread-safe: one meter lives on one capture thread.
    """

    def __init__(self) -> None:
        self._previous: np.ndarray | None = None
        self._reference: _Reference | None = None

    def measure(self, image: np.ndarray, as_reference: bool = False) -> FrameQuality:
        """The quality of a BGR image; `as_reference=True` makes this picture the view to compare with."""
        grey = _small_grey(image)
        luma = grey.astype(np.float32)
        change = 0.0 if self._previous is None else float(cv2.absdiff(grey, self._previous).mean())
        self._previous = grey
        smooth = cv2.GaussianBlur(luma, (3, 3), 0)  # a pixel of jitter is not a moved camera
        if as_reference:
            self._reference = _Reference.of(smooth)
        return FrameQuality(
            brightness=float(luma.mean()),
            contrast=float(luma.std()),
            sharpness=float(cv2.Laplacian(luma, cv2.CV_32F).var()),
            change=change,
            view_shift=self._reference.shift(smooth) if self._reference else None,
        )


class _Reference:
    def __init__(self, cells: np.ndarray, compared: np.ndarray):
        self._cells = cells  # (cells, pixels), each cell's mean removed and scaled to unit deviation
        self._compared = compared  # which cells take part

    @classmethod
    def of(cls, smooth: np.ndarray) -> _Reference:
        cells, deviation = _cells(smooth)
        textured = deviation >= MIN_CELL_TEXTURE
        border = textured & _BORDER.ravel()
        compared = border if border.sum() >= MIN_BORDER_CELLS else textured
        return cls(cells / np.maximum(deviation, 1e-6)[:, None], compared)

    def shift(self, smooth: np.ndarray) -> float | None:
        if not self._compared.any():
            return None
        cells, deviation = _cells(smooth)
        correlation = (self._cells * cells).mean(axis=1) / np.maximum(deviation, 1e-6)
        same = correlation[self._compared] > SAME_CELL_CORRELATION
        return 1.0 - float(same.mean())


def _small_grey(image: np.ndarray) -> np.ndarray:
    height, width = image.shape[:2]
    size = (MEASURE_WIDTH, max(GRID_ROWS, round(height * MEASURE_WIDTH / width)))
    # Grey first: one channel to scale instead of three (half the time).
    return cv2.resize(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), size, interpolation=cv2.INTER_AREA)


def _cells(picture: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The grid cells as rows of pixels with their mean removed, and each cell's standard deviation."""
    cell_h, cell_w = picture.shape[0] // GRID_ROWS, picture.shape[1] // GRID_COLUMNS
    grid = picture[: cell_h * GRID_ROWS, : cell_w * GRID_COLUMNS]
    cells = grid.reshape(GRID_ROWS, cell_h, GRID_COLUMNS, cell_w).transpose(0, 2, 1, 3)
    cells = cells.reshape(GRID_ROWS * GRID_COLUMNS, cell_h * cell_w)
    cells = cells - cells.mean(axis=1, keepdims=True)
    return cells, np.sqrt((cells * cells).mean(axis=1))
