#!/usr/bin/env bash
# Prints the path of a CPython X.Y interpreter, for the runs and checks that need one (.ci/run):
#   scripts/python-for.sh 3.10
# Looks for pythonX.Y on PATH, then pyenv's versions, then uv's managed interpreters; exits 1 if none.
set -euo pipefail
version=${1:?usage: python-for.sh X.Y}
for candidate in "$(command -v "python$version" || true)" \
  "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$version".*/bin/python"$version"; do
  # (pyenv's shims are on PATH for every version but run only the selected ones: try each.)
  if [ -x "$candidate" ] && "$candidate" -c "import sys; sys.exit('%d.%d' % sys.version_info[:2] != '$version')" 2>/dev/null; then
    echo "$candidate"
    exit 0
  fi
done
if command -v uv >/dev/null && uv python find "$version" 2>/dev/null; then
  exit 0
fi
echo "python-for.sh: no Python $version (install python$version, or pyenv install $version)" >&2
exit 1
