#!/usr/bin/env bash
# Installs proctord as a system service: Raspberry Pi OS (trixie or bookworm, 64-bit), a Jetson (JetPack 6)
# or plain Debian/Ubuntu on arm64 or x86-64.
# Run from the checkout as root; running it again upgrades the code and keeps config, credentials and data.
#
#   sudo systemd/install.sh [--site NAME] [--kiosk NAME] [--mqtt-host HOST] [--web-host ADDR] ...
#
# It creates the proctord user (groups video, gpio, audio), /opt/proctord (code + venv), /etc/proctord (config,
# credentials), /var/lib/proctord (data, models), installs and enables systemd/proctord.service.
# --root DIR installs the files into DIR instead of / (an image being built, or a test): no packages,
# no venv, no models, no service start; the unit is enabled with `systemctl --root`.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: install.sh [options]
  --platform pi|jetson|generic   default: detected (Raspberry Pi device tree, /etc/nv_tegra_release)
  --camera csi|usb               csi: picamera2 (Pi) / nvarguscamerasrc (Jetson); usb: /dev/video0 (V4L2)
                                 default: csi on a Pi or Jetson, usb elsewhere
  --site NAME --kiosk NAME       MQTT topic segments (default: default-site, the host name)
  --mqtt-host HOST[:PORT]        the supervisors' broker (default: 127.0.0.1:1883)
  --mqtt-user USER --mqtt-password-file FILE
  --web-host ADDR                technician page address (default 127.0.0.1; 0.0.0.0 = every interface)
  --web-password-hash-file FILE  a hash from `proctord hash-password` (asked for on a terminal otherwise)
  --s3-endpoint HOST[:PORT] --s3-bucket NAME --s3-access-key ID --s3-secret-key-file FILE
                                 upload evidence to this object store (all four, or none)
  --auto-start                   open a session at every boot (session.auto_start)
  --models-from DIR              mirror directory for the models PyPI does not have (COCO detectors)
  --python PATH                  the Python (>= 3.10) for the venv (default: python3)
  --no-start                     install and enable, do not (re)start now
  --root DIR                     install into DIR instead of / (see above)
EOF
}

src=$(cd "$(dirname "$0")/.." && pwd)
root=/ platform='' camera='' site=default-site kiosk='' mqtt_host=127.0.0.1:1883 mqtt_user='' mqtt_password_file=''
web_host=127.0.0.1 web_hash_file='' auto_start=false models_from='' start=yes python=python3
s3_endpoint='' s3_bucket='' s3_access_key='' s3_secret_file=''
while [ $# -gt 0 ]; do
  case "$1" in
    --platform) platform=$2; shift 2 ;;
    --camera) camera=$2; shift 2 ;;
    --site) site=$2; shift 2 ;;
    --kiosk) kiosk=$2; shift 2 ;;
    --mqtt-host) mqtt_host=$2; shift 2 ;;
    --mqtt-user) mqtt_user=$2; shift 2 ;;
    --mqtt-password-file) mqtt_password_file=$2; shift 2 ;;
    --web-host) web_host=$2; shift 2 ;;
    --web-password-hash-file) web_hash_file=$2; shift 2 ;;
    --s3-endpoint) s3_endpoint=$2; shift 2 ;;
    --s3-bucket) s3_bucket=$2; shift 2 ;;
    --s3-access-key) s3_access_key=$2; shift 2 ;;
    --s3-secret-key-file) s3_secret_file=$2; shift 2 ;;
    --auto-start) auto_start=true; shift ;;
    --models-from) models_from=$2; shift 2 ;;
    --python) python=$2; shift 2 ;;
    --no-start) start=no; shift ;;
    --root) root=$2; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "install.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
done

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'install.sh: %s\n' "$*" >&2; exit 1; }

case "$(uname -m)" in
  armv6l | armv7l | armv8l)
    die "$(uname -m) is a 32-bit system: proctord needs a 64-bit OS (aarch64; LiteRT has no 32-bit ARM wheel)." \
      "On a Raspberry Pi, flash Raspberry Pi OS (64-bit)." ;;
esac

[ "$(id -u)" -eq 0 ] || die "run as root (sudo)"
s3_given=$s3_endpoint$s3_bucket$s3_access_key$s3_secret_file
[ -z "$s3_given" ] || { [ -n "$s3_endpoint" ] && [ -n "$s3_bucket" ] && [ -n "$s3_access_key" ] && [ -s "$s3_secret_file" ]; } ||
  die "uploads need --s3-endpoint, --s3-bucket, --s3-access-key and a non-empty --s3-secret-key-file, all four"
root=$(cd "$root" && pwd) || die "--root: no such directory"
live=no; [ "$root" = / ] && live=yes
r=${root%/}  # prefix for every path written: "" on a live system
prefix=/opt/proctord
etc=/etc/proctord
state=/var/lib/proctord
# useradd & co. edit $root/etc/{passwd,group,shadow} when given --prefix.
account_opts=(); [ "$live" = yes ] || account_opts=(--prefix "$root")

detect_platform() {
  if grep -qs "Raspberry Pi" /proc/device-tree/model; then echo pi
  elif [ -f /etc/nv_tegra_release ]; then echo jetson
  else echo generic
  fi
}
platform=${platform:-$(detect_platform)}
case "$platform" in pi | jetson | generic) ;; *) die "--platform: $platform is not pi, jetson or generic" ;; esac
if [ -z "$camera" ]; then
  camera=usb; [ "$platform" = generic ] || camera=csi
fi
case "$camera" in csi | usb) ;; *) die "--camera: $camera is not csi or usb" ;; esac
[ "$camera" = csi ] && [ "$platform" = generic ] && die "--camera csi needs --platform pi or jetson"
kiosk=${kiosk:-$(hostname -s)}
for file in "$web_hash_file" "$mqtt_password_file" "$models_from"; do
  [ -z "$file" ] || [ -e "$file" ] || die "$file: no such file or directory"
done
[ -z "$mqtt_password_file" ] || [ -n "$mqtt_user" ] || die "--mqtt-password-file needs --mqtt-user"
say "installing proctord for $platform (camera: $camera) into ${root}"

system_packages() {
  # libportaudio2: the microphone ([audio], through sounddevice); alsa-utils: arecord -L names it.
  local packages=(python3-venv python3-pip v4l-utils libportaudio2 alsa-utils)
  case "$platform" in
    # picamera2 and lgpio (gpiozero's pin library) come from apt, seen through the venv.
    pi) packages+=(python3-picamera2 python3-lgpio) ;;
    # NVIDIA's OpenCV (JetPack's apt repository): built with GStreamer for nvarguscamerasrc; PyPI's never
    # is, and Ubuntu's python3-opencv is another build. pyproject.toml keeps PyPI's off a tegra kernel.
    jetson) packages+=(nvidia-opencv gstreamer1.0-tools) ;;
  esac
  say "apt packages: ${packages[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
}

account() {
  groupadd "${account_opts[@]}" -f --system gpio  # Raspberry Pi OS has it; elsewhere it only grants what udev gives it
  groupadd "${account_opts[@]}" -f --system video
  groupadd "${account_opts[@]}" -f --system audio
  groupadd "${account_opts[@]}" -f --system proctord
  if ! grep -q '^proctord:' "$r/etc/passwd"; then
    say "creating the proctord user"
    useradd "${account_opts[@]}" --system --gid proctord --home-dir "$state" --no-create-home \
      --shell /usr/sbin/nologin --comment "proctord daemon" proctord
  fi
  usermod "${account_opts[@]}" -a -G video,gpio,audio proctord
}

code() {
  if [ "$src" = "$r$prefix" ]; then return; fi
  say "copying the code to $r$prefix"
  install -d -m 0755 "$r$prefix"
  # Replace the code, keep the venv: a module deleted upstream must not linger.
  find "$r$prefix" -mindepth 1 -maxdepth 1 ! -name .venv -exec rm -rf {} +
  tar -C "$src" --exclude-vcs --exclude='./.venv*' --exclude=__pycache__ --exclude='*.egg-info' \
    --exclude=.pytest_cache --exclude=.ruff_cache --exclude=./report-out --exclude=./build -cf - . \
    | tar -C "$r$prefix" --no-same-owner -xf -
}

python_env() {
  local venv=$prefix/.venv
  # The Jetson's lock: Python 3.10 and numpy 1.26, what JetPack 6's OpenCV is built for.
  local constraints=$prefix/constraints.txt project=$prefix
  [ "$platform" = jetson ] && constraints=$prefix/constraints-jetson.txt
  # apt's simplejpeg is built for apt's numpy, not the venv's: picamera2 needs the venv's own.
  [ "$platform/$camera" = pi/csi ] && project="${prefix}[pi-venv]"
  if [ ! -x "$venv/bin/python" ]; then
    "$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))' ||
      die "proctord needs Python >= 3.10; $python is $("$python" --version 2>&1) (use --python PATH)"
    say "creating $venv (with the system's site packages: picamera2, lgpio, JetPack's OpenCV)"
    "$python" -m venv --system-site-packages "$venv"
  fi
  say "installing the pinned dependencies (${constraints##*/}); log in $venv/install.log"
  if ! { "$venv/bin/python" -m pip install --disable-pip-version-check -c "$constraints" pip &&
         "$venv/bin/python" -m pip install -c "$constraints" -e "$project"; } >"$venv/install.log" 2>&1; then
    tail -n 20 "$venv/install.log" >&2
    die "dependency installation failed; full log: $venv/install.log"
  fi
  # The daemon's own start-up checks, so the installer and the service refuse for the same reason.
  if [ "$platform" = jetson ]; then  # no PyPI OpenCV on a Jetson: cv2 is NVIDIA's or nothing
    "$venv/bin/python" -c 'import cv2' ||
      die "no OpenCV in the venv (above): NVIDIA's (apt install nvidia-opencv) must be importable as cv2"
  fi
  if [ "$platform/$camera" = jetson/csi ]; then
    "$venv/bin/python" -c 'import sys; from daemon.capture.sources import gstreamer_available as yes; sys.exit(not yes())' ||
      die "this OpenCV ($("$venv/bin/python" -c 'import cv2; print(cv2.__file__)')) has no GStreamer: nvarguscamerasrc cannot open; install NVIDIA's (apt install nvidia-opencv)"
  fi
  if [ "$platform/$camera" = pi/csi ]; then
    "$venv/bin/python" -c 'from daemon.capture.picamera import check_picamera2 as check, SourceError
try: check()
except SourceError as exc: raise SystemExit(exc)' || die "the CSI camera cannot open (above)"
  fi
  "$venv/bin/python" -m compileall -q "$prefix/daemon" "$prefix/webui"  # /opt is read-only to the service
}

credentials() {
  install -d -m 0700 "$r$etc/credentials"
  if [ -n "$web_hash_file" ]; then
    install -m 0600 "$web_hash_file" "$r$etc/credentials/web-password-hash"
  elif [ ! -s "$r$etc/credentials/web-password-hash" ] && [ "$live" = yes ] && [ -t 0 ]; then
    say "choose the technician's web password"
    if (umask 077 && "$prefix/.venv/bin/proctord" hash-password >"$etc/credentials/web-password-hash.new"); then
      mv "$etc/credentials/web-password-hash.new" "$etc/credentials/web-password-hash"
    else
      rm -f "$etc/credentials/web-password-hash.new"
    fi
  fi
  [ -z "$mqtt_password_file" ] || install -m 0600 "$mqtt_password_file" "$r$etc/credentials/mqtt-password"
  [ -z "$s3_secret_file" ] || install -m 0600 "$s3_secret_file" "$r$etc/credentials/s3-secret-key"
  chmod 0600 "$r$etc/credentials/"* 2>/dev/null || true
}

camera_config() {
  case "$camera/$platform" in
    csi/pi) printf 'kind = "picamera2"\npath = "0"                 # the first CSI camera\n' ;;
    csi/jetson)
      printf 'kind = "gstreamer"\n'
      printf 'path = "nvarguscamerasrc sensor-id=0 ! video/x-raw(memory:NVMM),width=1280,height=720,framerate=30/1'
      printf ' ! nvvidconv ! video/x-raw,format=BGRx,width=640,height=480 ! videoconvert ! video/x-raw,format=BGR'
      printf ' ! appsink drop=true max-buffers=1"\n' ;;
    *) printf 'kind = "opencv"\npath = "/dev/video0"\n' ;;
  esac
}

config() {
  install -d -m 0750 -g proctord "$r$etc" 2>/dev/null || install -d -m 0750 "$r$etc"
  install -m 0644 "$src/config/proctord.example.toml" "$r$etc/proctord.example.toml"
  local file=$r$etc/proctord.toml
  if [ -e "$file" ]; then
    say "keeping $etc/proctord.toml"
    return
  fi
  say "writing $etc/proctord.toml"
  local mqtt_port=1883 mqtt_server=$mqtt_host
  case "$mqtt_host" in *:*) mqtt_server=${mqtt_host%:*} mqtt_port=${mqtt_host##*:} ;; esac
  {
    printf '# proctord on %s, written by install.sh. Every key with its default and a comment:\n' "$kiosk"
    printf '# %s/proctord.example.toml. After an edit, check it as the service will see it:\n' "$etc"
    printf '# sudo CREDENTIALS_DIRECTORY=%s/credentials STATE_DIRECTORY=%s %s/.venv/bin/proctord check-config %s/proctord.toml\n' \
      "$etc" "$state" "$prefix" "$etc"
    printf '# and: systemctl restart proctord. Data and models: %s.\n\n' "$state"
    printf '[kiosk]\nsite = "%s"\nname = "%s"\n\n' "$site" "$kiosk"
    printf '[camera]\n'; camera_config; printf '\n'
    printf '[session]\nauto_start = %s          # open a session at every boot\n\n' "$auto_start"
    printf '[mqtt]\nhost = "%s"\nport = %s\n' "$mqtt_server" "$mqtt_port"
    if [ -n "$mqtt_user" ]; then
      printf 'username = "%s"\npassword_file = "mqtt-password"   # systemd credential\n' "$mqtt_user"
    fi
    printf '\n[web]\nhost = "%s"\n' "$web_host"
    if [ -s "$r$etc/credentials/web-password-hash" ]; then
      printf 'password_file = "web-password-hash"   # systemd credential\n'
    fi
    if [ -n "$s3_endpoint" ]; then
      printf '\n[upload]\nenabled = true\nendpoint = "%s"\nbucket = "%s"\naccess_key = "%s"\n' \
        "$s3_endpoint" "$s3_bucket" "$s3_access_key"
      printf 'secret_key_file = "s3-secret-key"   # systemd credential\n'
    fi
    printf '\n[gpio]\nenabled = %s\n' "$([ "$platform" = pi ] && echo true || echo false)"
    printf '# light_pins = ["GPIO17", "GPIO27", "GPIO22"]   # see proctord.example.toml\n'
  } >"$file.new"
  chmod 0640 "$file.new"
  chgrp proctord "$file.new" 2>/dev/null || true
  mv "$file.new" "$file"
}

models() {
  install -d -m 0750 -o proctord -g proctord "$state"
  say "installing the models into $state/models"
  local from=(); [ -z "$models_from" ] || from=(--from "$models_from")
  runuser -u proctord -- env STATE_DIRECTORY="$state" \
    "$prefix/.venv/bin/proctord" models fetch --config "$etc/proctord.toml" "${from[@]}"
}

unit() {
  install -d -m 0755 "$r/etc/systemd/system"
  install -m 0644 "$src/systemd/proctord.service" "$r/etc/systemd/system/proctord.service"
  if [ "$platform" = jetson ]; then
    install -d -m 0755 "$r/etc/systemd/system/proctord.service.d"
    install -m 0644 "$src/systemd/proctord.service.d/jetson.conf" "$r/etc/systemd/system/proctord.service.d/"
  fi
  if [ "$live" = yes ]; then
    systemctl daemon-reload
    systemctl enable proctord.service
  else
    systemctl --root="$root" enable proctord.service
  fi
}

if [ "$live" = yes ]; then
  system_packages
fi
account
code
if [ "$live" = yes ]; then
  python_env
fi
credentials
config
if [ "$live" = yes ]; then
  models
  # run's start-up checks, with the directories systemd gives the service (LoadCredential=, StateDirectory=).
  CREDENTIALS_DIRECTORY="$etc/credentials" STATE_DIRECTORY="$state" \
    "$prefix/.venv/bin/proctord" check-config "$etc/proctord.toml"
fi
unit
if [ "$live" = yes ] && [ "$start" = yes ]; then
  say "starting proctord"
  systemctl restart proctord.service
  say "done: systemctl status proctord; journalctl -u proctord -f"
else
  say "done: installed and enabled, not started"
fi
[ -s "$r$etc/credentials/web-password-hash" ] ||
  say "no web password yet: $prefix/.venv/bin/proctord hash-password > $etc/credentials/web-password-hash," \
    "add password_file = \"web-password-hash\" to [web], then systemctl restart proctord"
say "web page users (named, each with a role; they replace the shared password):" \
  "sudo -u proctord env STATE_DIRECTORY=$state $prefix/.venv/bin/proctord user add NAME --role technician|reviewer" \
  "--config $etc/proctord.toml"
