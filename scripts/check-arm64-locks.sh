#!/usr/bin/env bash
# Every lock resolves, for its kiosk, to aarch64 binary wheels only (run by .ci/run; about a minute).
#
#   scripts/check-arm64-locks.sh
#
# pip --dry-run with the kiosk's platform tags, run by an interpreter of the kiosk's Python so the lock's
# python_version markers are the kiosk's. Given --platform, pip takes the tags literally and does not widen
# manylinux_2_28 to older ones: each glibc up to the kiosk's is listed (ai-edge-litert ships only
# manylinux_2_27_aarch64 wheels). Not checked here: markers on the kernel release (`'tegra' not in
# platform_release` keeps PyPI's OpenCV off the Jetson) are evaluated for this machine.
set -euo pipefail
cd "$(dirname "$0")/.."

# name  python  glibc  lock  project
kiosks=(
  "pi-trixie      3.13 2.41 constraints.txt        .[pi-venv]"
  "pi-bookworm    3.11 2.36 constraints.txt        .[pi-venv]"
  "jetson-jetpack6 3.10 2.35 constraints-jetson.txt ."
)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
failed=()
for kiosk in "${kiosks[@]}"; do
  read -r name version glibc lock project <<<"$kiosk"
  # A scratch venv with the lock's pip: pip before 23.3 refuses --platform without --target.
  "$(scripts/python-for.sh "$version")" -m venv "$scratch/$name"
  python=$scratch/$name/bin/python
  "$python" -m pip install --disable-pip-version-check --quiet -c "$lock" pip
  tags=(--platform manylinux2014_aarch64)
  for ((minor = 17; minor <= ${glibc#2.}; minor++)); do tags+=(--platform "manylinux_2_${minor}_aarch64"); done
  abi=cp${version/./}
  command=("$python" -m pip install --disable-pip-version-check --dry-run --ignore-installed --quiet --report -
    --only-binary=:all: "${tags[@]}" --implementation cp --python-version "$version" --abi "$abi" --abi abi3
    --abi none -c "$lock" "$project")
  printf '==> %s (cp%s, glibc %s, %s): pip install --dry-run --only-binary=:all: --platform manylinux_2_{17..%s}_aarch64 ... -c %s %s\n' \
    "$name" "${version/./}" "$glibc" "$("$python" -m pip --version | cut -d' ' -f1-2)" "${glibc#2.}" "$lock" "$project"
  if report=$("${command[@]}" 2>"$scratch/$name.err"); then
    # One line per wheel pip would install, and a count.
    "$python" -c 'import json, sys
items = json.load(sys.stdin)["install"]
for item in items:
    url = item["download_info"]["url"]
    print("   ", url.rsplit("/", 1)[-1] if url.endswith(".whl") else item["metadata"]["name"] + " (this project)")
print(f"    {len(items)} packages, all binary wheels for aarch64")' <<<"$report"
  else
    cat "$scratch/$name.err" >&2
    failed+=("$name")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "check-arm64-locks.sh: no aarch64 wheel set for: ${failed[*]}" >&2
  exit 1
fi
echo "==> every lock resolves to aarch64 wheels"
