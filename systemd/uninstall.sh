#!/usr/bin/env bash
# The reverse of install.sh: stops and removes the service and /opt/proctord.
# Keeps the evidence (/var/lib/proctord), the logs, the config and credentials (/etc/proctord) and the
# proctord user, unless --purge. Running it again is safe.
#
#   sudo systemd/uninstall.sh [--purge] [--root DIR]
set -euo pipefail

root=/ purge=no
while [ $# -gt 0 ]; do
  case "$1" in
    --purge) purge=yes; shift ;;
    --root) root=$2; shift 2 ;;
    -h | --help) sed -n '2,6p' "$0"; exit 0 ;;
    *) echo "uninstall.sh: unknown option $1" >&2; exit 2 ;;
  esac
done

say() { printf '==> %s\n' "$*" >&2; }
[ "$(id -u)" -eq 0 ] || { echo "uninstall.sh: run as root (sudo)" >&2; exit 1; }
root=$(cd "$root" && pwd)
live=no; [ "$root" = / ] && live=yes
r=${root%/}

if [ "$live" = yes ]; then
  systemctl disable --now proctord.service 2>/dev/null || true
elif [ -e "$r/etc/systemd/system/proctord.service" ]; then
  systemctl --root="$root" disable proctord.service
fi
say "removing the unit and $r/opt/proctord"
rm -rf "$r/etc/systemd/system/proctord.service" "$r/etc/systemd/system/proctord.service.d" "$r/opt/proctord"
[ "$live" = no ] || systemctl daemon-reload

if [ "$purge" = yes ]; then
  say "purging config, credentials, data (recordings and evidence included), logs and the proctord user"
  rm -rf "$r/etc/proctord" "$r/var/lib/proctord" "$r/var/log/proctord"
  account_opts=(); [ "$live" = yes ] || account_opts=(--prefix "$root")
  if grep -q '^proctord:' "$r/etc/passwd"; then
    userdel "${account_opts[@]}" proctord
  fi
  if grep -q '^proctord:' "$r/etc/group"; then
    groupdel "${account_opts[@]}" proctord
  fi
else
  say "kept: /etc/proctord, /var/lib/proctord (evidence), /var/log/proctord, the proctord user (--purge removes them)"
fi
