"""Geometry without models: crops and their way back, camera optics, head-pose angles and their signs."""

import math

import cv2
import numpy as np
import pytest

from daemon.inference import face_geometry
from daemon.inference.roi import Roi, cut_rgb, to_frame


def _dot_image(x: int, y: int) -> np.ndarray:
    image = np.zeros((240, 320, 3), np.uint8)
    cv2.circle(image, (x, y), 2, (255, 255, 255), -1)
    return image


@pytest.mark.parametrize("flip", [False, True])
@pytest.mark.parametrize("angle_deg", [0.0, 30.0, -75.0])
def test_a_point_cut_out_maps_back_to_where_it_was(angle_deg, flip):
    image = _dot_image(150, 100)
    roi = Roi(cx=140.0, cy=110.0, size=80.0, angle=math.radians(angle_deg))
    crop_to_frame = roi.crop_to_frame(64)
    crop = cut_rgb(image, crop_to_frame, 64, flip=flip)
    v, u = np.unravel_index(crop[..., 0].astype(float).argmax(), crop.shape[:2])
    point = np.array([[u + 0.5, v + 0.5]])  # pixel centre, continuous crop coordinates
    if flip:
        point[:, 0] = 64 - point[:, 0]
    x, y = to_frame(point, crop_to_frame)[0]
    # The dot's centre pixel is (150, 100), i.e. (150.5, 100.5) in continuous coordinates.
    assert abs(x - 150.5) <= 1.3 and abs(y - 100.5) <= 1.3


def test_a_crop_past_the_frame_edge_repeats_the_edge():
    image = np.zeros((100, 100, 3), np.uint8)
    image[:, -1] = (0, 0, 255)  # red right column, BGR
    crop = cut_rgb(image, Roi(cx=100.0, cy=50.0, size=40.0, angle=0.0).crop_to_frame(16), 16)
    assert crop.shape == (16, 16, 3)
    assert (crop[:, -4:, 0] > 200).all()  # red in RGB, replicated beyond the frame


def test_camera_matrix_from_field_of_view_or_intrinsics():
    matrix = face_geometry.camera_matrix(640, 480, 60.0, None)
    assert matrix[0, 0] == pytest.approx(320 / math.tan(math.radians(30)))
    assert (matrix[0, 2], matrix[1, 2]) == (320, 240)
    given = face_geometry.camera_matrix(640, 480, 60.0, (500.0, 510.0, 330.0, 250.0))
    assert (given[0, 0], given[1, 1], given[0, 2], given[1, 2]) == (500.0, 510.0, 330.0, 250.0)


def _rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Turn the face by yaw about the camera's y axis, pitch about x, roll about the line of sight, with
    HeadPose's meanings (checked against the image in the test below, not assumed)."""
    y, p, r = (math.radians(a) for a in (-yaw, -pitch, roll))
    about_y = np.array([[math.cos(y), 0, math.sin(y)], [0, 1, 0], [-math.sin(y), 0, math.cos(y)]])
    about_x = np.array([[1, 0, 0], [0, math.cos(p), -math.sin(p)], [0, math.sin(p), math.cos(p)]])
    about_z = np.array([[math.cos(r), -math.sin(r), 0], [math.sin(r), math.cos(r), 0], [0, 0, 1]])
    return about_y @ about_x @ about_z


def _landmarks(rotation: np.ndarray, camera: np.ndarray) -> np.ndarray:
    """A 468-point array with the canonical face's pose points projected at 60 cm."""
    rvec, _ = cv2.Rodrigues(rotation)
    points, _ = cv2.projectPoints(face_geometry._MODEL_POINTS, rvec, np.array([0.0, 0.0, 60.0]), camera, None)
    landmarks = np.zeros((468, 3), np.float32)
    landmarks[face_geometry._POSE_INDICES, :2] = points.reshape(-1, 2)
    return landmarks


@pytest.mark.parametrize(("yaw", "pitch", "roll"), [(0, 0, 0), (25, 0, 0), (-30, 10, 0), (10, -20, 15), (0, 0, -20)])
def test_head_pose_recovers_the_angles(yaw, pitch, roll):
    camera = face_geometry.camera_matrix(640, 480, 60.0, None)
    pose = face_geometry.head_pose(_landmarks(_rotation(yaw, pitch, roll), camera), camera)
    assert (pose.yaw, pose.pitch, pose.roll) == pytest.approx((yaw, pitch, roll), abs=0.5)


def test_head_pose_signs_match_the_image():
    """yaw > 0: the nose tip moves toward image-right of the eyes; pitch > 0: up; roll > 0: the line from
    the subject's right eye (image-left) to the left eye turns clockwise, i.e. its right end goes down."""
    camera = face_geometry.camera_matrix(640, 480, 60.0, None)
    nose, right_eye, left_eye = 1, 33, 263

    def offset(yaw=0.0, pitch=0.0):
        points = _landmarks(_rotation(yaw, pitch, 0), camera)
        return points[nose, :2] - (points[right_eye, :2] + points[left_eye, :2]) / 2

    assert offset(yaw=20)[0] > offset()[0] + 5
    assert offset(pitch=20)[1] < offset()[1] - 5
    tilted = _landmarks(_rotation(0, 0, 20), camera)
    assert tilted[left_eye, 1] > tilted[right_eye, 1] + 5


def test_a_face_at_the_edge_of_the_view_facing_the_camera_has_no_yaw():
    """Angles are taken from the camera-to-face line: turned to face the lens from the image's left side,
    the head has yaw 0 (in the optical axis' terms it points 20 degrees toward image-right)."""
    camera = face_geometry.camera_matrix(640, 480, 60.0, None)
    position = np.array([-60.0 * math.tan(math.radians(20)), 0.0, 60.0])
    rvec, _ = cv2.Rodrigues(_rotation(20, 0, 0))
    points, _ = cv2.projectPoints(face_geometry._MODEL_POINTS, rvec, position, camera, None)
    landmarks = np.zeros((468, 3), np.float32)
    landmarks[face_geometry._POSE_INDICES, :2] = points.reshape(-1, 2)
    pose = face_geometry.head_pose(landmarks, camera)
    assert points[:, 0, 0].max() < 320  # in the left half of the picture
    assert (pose.yaw, pose.pitch, pose.roll) == pytest.approx((0, 0, 0), abs=0.5)
