"""Source configuration: each kind's path is checked when the config is read, and what no retry can fix
(a backend this machine lacks, a video file that is not there) stops the start with a clear message,
while a camera that is merely absent does not."""

from __future__ import annotations

import importlib.util

import pytest
from conftest import daemon_config, run_proctord

from daemon.capture.grabber import FrameGrabber
from daemon.capture.sources import SourceError, gstreamer_available, redact_url, source_name
from daemon.config import CameraConfig, ConfigError, parse_config


def problems(toml: str) -> list[str]:
    with pytest.raises(ConfigError) as refused:
        parse_config(toml)
    return refused.value.problems


@pytest.mark.parametrize(
    ("kind", "path", "message"),
    [
        ("url", "/dev/video0", "a url source needs an rtsp://, rtsps://, http:// or https:// address"),
        ("url", "ftp://camera/stream", "a url source needs an rtsp://"),
        ("gstreamer", "v4l2src ! autovideosink", "a GStreamer pipeline must end in an appsink"),
        ("picamera2", "/dev/video0", 'picamera2 needs a camera number ("0" for the first camera)'),
        ("opencv", " ", "a device index, device path or video file is required"),
    ],
)
def test_each_kind_checks_its_path(kind, path, message):
    [problem] = problems(f'[camera]\nkind = "{kind}"\npath = "{path}"\n')
    assert problem.startswith(f"camera.path: {path!r} is not allowed: {message}")


def test_the_backoff_cap_cannot_be_below_its_start():
    [problem] = problems("[camera]\nreopen_min_s = 5.0\nreopen_max_s = 1.0\n")
    assert problem == "camera.reopen_max_s: 1.0 is not allowed: must be at least camera.reopen_min_s (5.0)"


def test_every_kind_is_accepted_with_a_fitting_path():
    for kind, path in [
        ("opencv", "/dev/video0"), ("opencv", "1"), ("picamera2", "0"), ("file", "/media/exam.mp4"),
        ("url", "rtsp://user:pw@10.0.0.7:554/stream1"), ("url", "http://10.0.0.7/video.mjpg"),
        ("gstreamer", "nvarguscamerasrc ! nvvidconv ! video/x-raw,format=BGRx ! videoconvert ! appsink"),
    ]:
        assert parse_config(f'[camera]\nkind = "{kind}"\npath = "{path}"\n').camera.kind == kind


def test_a_stream_password_never_reaches_the_status_page():
    assert redact_url("rtsp://proctor:s3cret@10.0.0.7:554/live") == "rtsp://proctor:***@10.0.0.7:554/live"
    assert redact_url("http://10.0.0.7/video.mjpg") == "http://10.0.0.7/video.mjpg"
    camera = CameraConfig(kind="url", path="rtsp://proctor:s3cret@10.0.0.7/live")
    assert source_name(camera) == "rtsp://proctor:***@10.0.0.7/live"


def test_a_missing_video_file_stops_the_start(tmp_path):
    with pytest.raises(SourceError, match="camera.path: video file .* does not exist"):
        FrameGrabber.for_camera(CameraConfig(kind="file", path=str(tmp_path / "none.mp4")))


def test_an_absent_camera_does_not_stop_the_start():
    grabber = FrameGrabber.for_camera(CameraConfig(kind="opencv", path="/dev/proctord-test-no-such-camera"))
    assert grabber.stats.online and grabber.stats.captured == 0  # waited for once started


@pytest.mark.skipif(importlib.util.find_spec("picamera2") is not None, reason="picamera2 is installed here")
def test_picamera2_without_the_library_says_how_to_install_it():
    with pytest.raises(SourceError) as refused:
        FrameGrabber.for_camera(CameraConfig(kind="picamera2", path="0"))
    assert "the picamera2 library is missing" in str(refused.value)
    assert "sudo apt install python3-picamera2" in str(refused.value)


@pytest.mark.skipif(gstreamer_available(), reason="this OpenCV has GStreamer")
def test_gstreamer_without_support_in_opencv_stops_the_daemon_with_the_reason(tmp_path, models_dir):
    config = tmp_path / "proctord.toml"
    config.write_text(daemon_config(
        tmp_path, models_dir, camera={"kind": "gstreamer", "path": "videotestsrc ! videoconvert ! appsink"}
    ))
    result = run_proctord("run", "--config", str(config), timeout=60)
    assert result.returncode == 2
    assert "this OpenCV build has no GStreamer support" in result.stderr
