"""Physical signals from the face landmarks: head pose, gaze, eye and mouth openness.

Sign conventions are HeadPose's and Gaze's (analysis.py): yaw > 0 toward image-right, pitch > 0 up,
roll > 0 clockwise in the image, in degrees. Angles are measured from the line between the camera and the
face, not from the camera's optical axis: yaw = pitch = 0 means facing the camera, wherever the face is
in the picture (a candidate sitting off-centre and looking at the screen is not "looking away").
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from daemon.inference.analysis import Gaze, HeadPose
from daemon.inference.iris import INNER_CORNER, LOWER_LID, OUTER_CORNER, UPPER_LID, Eyes

# Rigid points of MediaPipe's canonical face model (mediapipe/modules/face_geometry/data/
# canonical_face_model.obj, Apache-2.0), in cm, by mesh index. Only points that expressions barely move:
# eye corners, nose, forehead, cheekbones and the face's sides at eye and ear level (no lips, jaw or brows).
# The model's axes are x toward image-right, y up, z toward the camera; _MODEL_POINTS turns them into the
# camera's (x right, y down, z away from the camera).
_CANONICAL = {
    1: (0.000000, -1.126865, 7.475604),  # nose tip
    4: (0.000000, -0.463170, 7.586580),
    6: (0.000000, 2.473255, 5.788627),  # nose bridge
    8: (0.000000, 4.019042, 5.284764),
    9: (0.000000, 4.885979, 5.385258),
    10: (0.000000, 8.261778, 4.481535),  # top of the forehead
    33: (-4.445859, 2.663991, 3.173422),  # eye A outer corner
    263: (4.445859, 2.663991, 3.173422),
    133: (-1.856432, 2.585245, 3.757904),  # eye A inner corner
    362: (1.856432, 2.585245, 3.757904),
    129: (-1.785794, -0.978284, 4.850470),  # nose wings
    358: (1.785794, -0.978284, 4.850470),
    116: (-6.465170, 0.937119, 1.689873),  # cheekbones
    345: (6.465170, 0.937119, 1.689873),
    127: (-7.743095, 2.364999, -2.005167),  # sides of the face at eye level
    356: (7.743095, 2.364999, -2.005167),
    93: (-7.542244, -1.049282, -2.431321),  # sides of the face at ear level
    323: (7.542244, -1.049282, -2.431321),
}
_POSE_INDICES = np.array(list(_CANONICAL))
_MODEL_POINTS = np.array(list(_CANONICAL.values()), dtype=np.float64) * np.array([1.0, -1.0, -1.0])

# Eye geometry (adult averages, mm): the visible iris is 11.7 mm across (also MediaPipe's iris depth
# estimate); its centre turns on a 12 mm radius about the eyeball's centre, which lies about 6 mm behind
# the midpoint of the two eye corners.
_IRIS_DIAMETER_MM = 11.7
_EYE_RADIUS_MM = 12.0
_CORNERS_IN_FRONT_OF_CENTRE_MM = 6.0

_MOUTH_CORNERS = (61, 291)
_INNER_LIPS = (13, 14)


def camera_matrix(width: int, height: int, hfov_deg: float, intrinsics: tuple[float, ...] | None) -> np.ndarray:
    """The 3x3 pinhole matrix: `intrinsics` (fx, fy, cx, cy) when given, else square pixels with the
    principal point at the centre and the focal length from the horizontal field of view."""
    if intrinsics is not None:
        fx, fy, cx, cy = intrinsics
    else:
        fx = fy = width / 2 / math.tan(math.radians(hfov_deg) / 2)
        cx, cy = width / 2, height / 2
    return np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]], dtype=np.float64)


def head_pose(landmarks: np.ndarray, camera: np.ndarray) -> HeadPose | None:
    """Yaw, pitch and roll from the mesh by cv2.solvePnP against the canonical face; None if it fails."""
    image_points = landmarks[_POSE_INDICES, :2].astype(np.float64)
    ok, rvec, tvec = cv2.solvePnP(_MODEL_POINTS, image_points, camera, None, flags=cv2.SOLVEPNP_SQPNP)
    if not ok or tvec[2, 0] <= 0:
        return None
    return pose_from_rotation(_toward_the_camera(tvec.ravel()) @ cv2.Rodrigues(rvec)[0])


def _toward_the_camera(position: np.ndarray) -> np.ndarray:
    """The smallest rotation that turns the camera-to-face line onto the optical axis."""
    x, y, z = (float(v) for v in position / np.linalg.norm(position))
    sin = math.hypot(x, y)  # |ray x (0, 0, 1)| = |(y, -x, 0)|
    if sin < 1e-9:
        return np.eye(3)
    angle = math.atan2(sin, z)
    return cv2.Rodrigues(np.array([y / sin * angle, -x / sin * angle, 0.0]))[0]


def pose_from_rotation(rotation: np.ndarray) -> HeadPose:
    """Split a face-to-camera rotation as yaw (about the camera's y), then pitch, then roll (about the face's
    forward axis), with HeadPose's signs. The face looks along -z of its model, i.e. at the camera."""
    forward = rotation @ np.array([0.0, 0.0, -1.0])
    yaw = math.atan2(forward[0], -forward[2])
    pitch = math.atan2(-forward[1], math.hypot(forward[0], forward[2]))
    # Undo yaw and pitch; what is left turns the face about the line of sight.
    cy, sy, cp, sp = math.cos(yaw), math.sin(yaw), math.cos(pitch), math.sin(pitch)
    undo_yaw = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])  # inverse of the rotation by -yaw about y
    undo_pitch = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    rest = undo_pitch @ undo_yaw @ rotation
    roll = math.atan2(rest[1, 0], rest[0, 0])
    return HeadPose(math.degrees(yaw), math.degrees(pitch), math.degrees(roll))


def gaze(eyes: Eyes, pose: HeadPose, use: Sequence[int] = (0, 1)) -> Gaze:
    """Where the eyes point, from each iris centre relative to its eye corners, with the head pose.
    `use` lists the eyes to trust (0 = eye A, 1 = eye B): leave out one whose lids are closed
    (eye_openness), its iris position means nothing.

    Across the image, the iris centre lies R·sin(gaze) from the eyeball's centre, which projects a·sin(head)
    behind the corners' midpoint (R, a: the eye constants above); the iris's own diameter gives the scale in
    mm. Both eyes are averaged, each weighted by its visible width (a turned head hides the far eye).
    """
    yaw_sum = pitch_sum = weight_sum = 0.0
    head_yaw, head_pitch = math.radians(pose.yaw), math.radians(pose.pitch)
    for eye in use:
        outline, iris = eyes.outline[eye], eyes.iris[eye]
        outer, inner = outline[OUTER_CORNER], outline[INNER_CORNER]
        # Across the face toward image-right (subject's right to left), and down the face.
        across = inner - outer if eye == 0 else outer - inner
        width = float(np.hypot(*across))
        diameter_px = _iris_diameter_px(iris)
        if width <= 0 or diameter_px <= 0:
            continue
        across /= width
        down = np.array([-across[1], across[0]])
        offset = iris[0, :2] - (outer + inner) / 2
        mm_per_px = _IRIS_DIAMETER_MM / diameter_px
        x_mm = float(offset @ across) * mm_per_px
        y_mm = -float(offset @ down) * mm_per_px  # up is positive, as for pitch
        yaw_sum += width * _rotation(x_mm, head_yaw)
        pitch_sum += width * _rotation(y_mm, head_pitch)
        weight_sum += width
    if weight_sum == 0:  # no usable eye: the head pose is the best guess
        return Gaze(pose.yaw, pose.pitch, 0.0, 0.0)
    gaze_yaw, gaze_pitch = math.degrees(yaw_sum / weight_sum), math.degrees(pitch_sum / weight_sum)
    return Gaze(gaze_yaw, gaze_pitch, gaze_yaw - pose.yaw, gaze_pitch - pose.pitch)


def _rotation(offset_mm: float, head: float) -> float:
    """The eye's direction (radians, from the camera-to-face line) from the iris offset to the corners'
    midpoint and the head's angle."""
    ratio = (offset_mm + _CORNERS_IN_FRONT_OF_CENTRE_MM * math.sin(head)) / _EYE_RADIUS_MM
    return math.asin(max(-1.0, min(1.0, ratio)))


def _iris_diameter_px(iris: np.ndarray) -> float:
    """The larger of the two diameters: a turned eye foreshortens one of them, never both."""
    across = math.dist(iris[1, :2], iris[3, :2])
    along = math.dist(iris[2, :2], iris[4, :2])
    return max(across, along)


def eye_openness(eyes: Eyes) -> tuple[float, float]:
    """Lid gap over eye width for eye A and eye B (about 0.3 open, under 0.1 closed)."""
    ratios = []
    for outline in eyes.outline:
        width = math.dist(outline[OUTER_CORNER], outline[INNER_CORNER])
        ratios.append(math.dist(outline[UPPER_LID], outline[LOWER_LID]) / width if width > 0 else 0.0)
    return ratios[0], ratios[1]


def mouth_openness(landmarks: np.ndarray) -> float:
    """Inner-lip gap over mouth width (0 closed, about 0.5 wide open)."""
    width = math.dist(landmarks[_MOUTH_CORNERS[0], :2], landmarks[_MOUTH_CORNERS[1], :2])
    gap = math.dist(landmarks[_INNER_LIPS[0], :2], landmarks[_INNER_LIPS[1], :2])
    return gap / width if width > 0 else 0.0
