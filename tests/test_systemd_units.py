"""The systemd unit and the install/uninstall scripts, run for real into a throwaway root directory.

`systemd-analyze verify` checks the installed unit (and the Jetson drop-in) against this machine's
systemd; install.sh --root creates the user, directories, config and credentials there, enables the
unit with `systemctl --root`, and keeps what a technician changed when it runs again.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from conftest import REPO, run_proctord

INSTALL = REPO / "systemd" / "install.sh"
UNINSTALL = REPO / "systemd" / "uninstall.sh"
UNIT = REPO / "systemd" / "proctord.service"
JETSON_DROPIN = REPO / "systemd" / "proctord.service.d" / "jetson.conf"

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="useradd --prefix and chown need root")


def tool(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if path is None:
        pytest.skip(f"{name} is not installed (./run test installs it)")
    return path


@pytest.fixture
def target(tmp_path) -> Path:
    """An empty system: its own passwd/group files, and the distribution's units for verify to resolve."""
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    for name in ("passwd", "group", "shadow", "gshadow", "login.defs"):
        if Path("/etc", name).exists():
            shutil.copy(Path("/etc", name), root / "etc" / name)
    (root / "usr/lib/systemd").mkdir(parents=True)
    (root / "usr/lib/systemd/system").symlink_to("/lib/systemd/system")
    return root


def install(root: Path, *options: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(INSTALL), "--root", str(root), *options], capture_output=True, text=True, check=True
    )


def with_stub_daemon(root: Path) -> None:
    """What the venv step would put at ExecStart (it needs the network, so --root skips it)."""
    binary = root / "opt/proctord/.venv/bin/proctord"
    binary.parent.mkdir(parents=True, exist_ok=True)
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)


def verify(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [tool("systemd-analyze"), "verify", f"--root={root}", "proctord.service"],
        capture_output=True, text=True, check=False,
    )


def test_scripts_are_clean_shell():
    for script in (INSTALL, UNINSTALL):
        subprocess.run(["bash", "-n", str(script)], check=True)
        subprocess.run([tool("shellcheck"), str(script)], check=True)


@needs_root
@pytest.mark.parametrize("platform", ["pi", "jetson", "generic"])
def test_installed_unit_verifies_without_a_warning(target, platform):
    install(target, "--platform", platform)
    with_stub_daemon(target)
    result = verify(target)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    dropin = target / "etc/systemd/system/proctord.service.d/jetson.conf"
    assert dropin.exists() == (platform == "jetson")


def settings(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith(("#", "["))]


def test_jetson_dropin_clears_the_device_list_and_shares_tmp_with_argus():
    lines = settings(JETSON_DROPIN.read_text())
    # An empty DeviceAllow= resets the main unit's list; only then does DevicePolicy=auto open the NVIDIA devices.
    assert lines.index("DeviceAllow=") < lines.index("DevicePolicy=auto")
    assert not [line for line in lines if line.startswith("DeviceAllow=") and line != "DeviceAllow="]
    # nvarguscamerasrc connects to /tmp/argus_socket in the host's /tmp.
    assert "PrivateTmp=no" in lines and "ReadWritePaths=/tmp" in lines
    assert "After=nvargus-daemon.service" in lines
    # ... and the main unit's lines it overrides are there to override.
    main = settings(UNIT.read_text())
    assert "PrivateTmp=yes" in main and "DevicePolicy=closed" in main and "ProtectSystem=strict" in main


def test_unit_waits_for_the_clock_it_timestamps_evidence_with():
    lines = settings(UNIT.read_text())
    assert "Wants=time-sync.target" in lines and "After=time-sync.target" in lines


@needs_root
def test_install_refuses_a_32_bit_arm_system_with_the_reason(target):
    # A 32-bit Raspberry Pi OS, as `uname -m` reports it (bash exports the function to install.sh).
    env = {**os.environ, "BASH_FUNC_uname%%": "() { echo armv7l; }"}
    result = subprocess.run(
        ["bash", str(INSTALL), "--root", str(target), "--platform", "pi"],
        capture_output=True, text=True, env=env, check=False,
    )
    assert result.returncode == 1
    assert "armv7l is a 32-bit system: proctord needs a 64-bit OS" in result.stderr
    assert not (target / "opt/proctord").exists()


@needs_root
def test_verify_catches_what_a_broken_unit_would_do(target):
    install(target, "--platform", "generic")
    # Without the venv's entry point the unit could not start: verify says so.
    result = verify(target)
    assert result.returncode != 0 and "/opt/proctord/.venv/bin/proctord" in result.stderr


def test_unit_is_a_notify_service_with_a_watchdog_and_the_credentials_the_config_names():
    unit = UNIT.read_text()
    for line in [
        "Type=notify", "NotifyAccess=main", "WatchdogSec=30", "Restart=on-failure", "RestartPreventExitStatus=2",
        "StartLimitBurst=5", "User=proctord", "SupplementaryGroups=video gpio audio", "StateDirectory=proctord",
        "LogsDirectory=proctord", "ProtectSystem=strict", "NoNewPrivileges=yes", "DevicePolicy=closed",
        "DeviceAllow=char-video4linux rw", "DeviceAllow=char-gpiochip rw", "DeviceAllow=char-alsa rw",
        "TimeoutStopSec=30",
        "ExecStart=/opt/proctord/.venv/bin/proctord run --config /etc/proctord/proctord.toml",
    ]:
        assert f"\n{line}\n" in unit, line
    for credential in ("web-password-hash", "mqtt-password", "mqtt-command-token"):
        assert f"\nLoadCredential={credential}:/etc/proctord/credentials/{credential}\n" in unit
        assert f"\nSetCredential={credential}:\\n\n" in unit  # a missing file is not a failed start


@needs_root
def test_install_creates_user_directories_config_and_enables_the_unit(target, tmp_path):
    web_hash = tmp_path / "hash"
    web_hash.write_text("scrypt:32768:8:1$salt$0123abcd\n")
    mqtt_password = tmp_path / "mqtt"
    mqtt_password.write_text("s3cret\n")
    s3_secret = tmp_path / "s3"
    s3_secret.write_text("wJalrXUtnFEMI/K7MDENG\n")
    install(
        target, "--platform", "pi", "--site", "lab", "--kiosk", "k-07", "--mqtt-host", "broker.lan:8883",
        "--mqtt-user", "kiosk7", "--mqtt-password-file", str(mqtt_password),
        "--web-password-hash-file", str(web_hash), "--auto-start",
        "--s3-endpoint", "minio.school.lan:9000", "--s3-bucket", "evidence", "--s3-access-key", "kiosk7",
        "--s3-secret-key-file", str(s3_secret),
    )

    passwd = (target / "etc/passwd").read_text()
    assert "proctord:x:" in passwd and ":/var/lib/proctord:/usr/sbin/nologin\n" in passwd
    groups = {line.split(":")[0]: line.split(":")[3].split(",") for line in (target / "etc/group").read_text().split()}
    assert all("proctord" in groups[group] for group in ("video", "gpio", "audio")) and "proctord" in groups

    assert (target / "etc/systemd/system/multi-user.target.wants/proctord.service").is_symlink()
    assert (target / "etc/systemd/system/proctord.service").read_text() == UNIT.read_text()
    assert (target / "opt/proctord/daemon/service.py").is_file()
    assert not (target / "opt/proctord/.git").exists()

    credentials = target / "etc/proctord/credentials"
    assert stat.S_IMODE(credentials.stat().st_mode) == 0o700
    for name, content in [("web-password-hash", web_hash), ("mqtt-password", mqtt_password), ("s3-secret-key", s3_secret)]:
        assert stat.S_IMODE((credentials / name).stat().st_mode) == 0o600
        assert (credentials / name).read_text() == content.read_text()

    config = target / "etc/proctord/proctord.toml"
    assert stat.S_IMODE(config.stat().st_mode) == 0o640
    text = config.read_text()
    for line in ['site = "lab"', 'name = "k-07"', 'kind = "picamera2"', 'host = "broker.lan"', "port = 8883",
                 'username = "kiosk7"', 'password_file = "mqtt-password"', 'password_file = "web-password-hash"',
                 "auto_start = true", "enabled = true", 'endpoint = "minio.school.lan:9000"', 'bucket = "evidence"',
                 'secret_key_file = "s3-secret-key"']:
        assert line in text, line
    checked = run_proctord("check-config", "--file-only", str(config))  # written for a kiosk, not this machine
    assert checked.returncode == 0, checked.stderr


@needs_root
def test_install_refuses_half_an_object_store(target, tmp_path):
    refused = subprocess.run(["bash", str(INSTALL), "--root", str(target), "--s3-endpoint", "minio.lan:9000"],
                             check=False, capture_output=True, text=True)
    assert refused.returncode == 1 and "all four" in refused.stderr
    assert not (target / "etc/proctord").exists()


@needs_root
@pytest.mark.parametrize(("platform", "camera", "kind"), [
    ("jetson", "csi", 'kind = "gstreamer"'), ("jetson", "usb", 'kind = "opencv"'), ("generic", "usb", 'kind = "opencv"'),
])
def test_every_platform_gets_a_valid_config(target, platform, camera, kind):
    install(target, "--platform", platform, "--camera", camera)
    config = target / "etc/proctord/proctord.toml"
    assert kind in config.read_text()
    checked = run_proctord("check-config", "--file-only", str(config))  # written for a kiosk, not this machine
    assert checked.returncode == 0, checked.stderr


@needs_root
def test_running_install_again_keeps_config_and_credentials_and_replaces_the_code(target, tmp_path):
    web_hash = tmp_path / "hash"
    web_hash.write_text("scrypt:32768:8:1$salt$0123abcd\n")
    install(target, "--platform", "generic", "--web-password-hash-file", str(web_hash))
    config = target / "etc/proctord/proctord.toml"
    config.write_text(config.read_text().replace('[web]\nhost = "127.0.0.1"', '[web]\nhost = "10.0.0.7"'))
    stale = target / "opt/proctord/daemon/removed_upstream.py"
    stale.write_text("")
    passwd_before = (target / "etc/passwd").read_text()

    second = install(target, "--platform", "generic")

    assert "keeping /etc/proctord/proctord.toml" in second.stderr
    assert 'host = "10.0.0.7"' in config.read_text()
    assert (target / "etc/proctord/credentials/web-password-hash").read_text() == web_hash.read_text()
    assert (target / "etc/passwd").read_text() == passwd_before  # no second user
    assert not stale.exists()


@needs_root
def test_uninstall_keeps_the_evidence_unless_purged(target):
    install(target, "--platform", "generic")
    evidence = target / "var/lib/proctord/proctord.db"
    evidence.parent.mkdir(parents=True)
    evidence.write_text("sessions")

    subprocess.run(["bash", str(UNINSTALL), "--root", str(target)], check=True, capture_output=True)
    assert not (target / "etc/systemd/system/proctord.service").exists()
    assert not (target / "etc/systemd/system/multi-user.target.wants/proctord.service").exists()
    assert not (target / "opt/proctord").exists()
    assert evidence.exists() and (target / "etc/proctord/proctord.toml").exists()
    assert "\nproctord:" in (target / "etc/passwd").read_text()

    subprocess.run(["bash", str(UNINSTALL), "--root", str(target)], check=True, capture_output=True)  # again: fine
    subprocess.run(["bash", str(UNINSTALL), "--root", str(target), "--purge"], check=True, capture_output=True)
    assert not evidence.exists() and not (target / "etc/proctord").exists()
    assert "\nproctord:" not in (target / "etc/passwd").read_text()
    assert "\nproctord:" not in (target / "etc/group").read_text()
