#!/usr/bin/env bash
# Install this checkout with plain pip (the pip `python3 -m venv` ships, no cache) into a fresh venv
# and fail if it takes longer than a limit: pip's resolver once backtracked for 30+ minutes on our
# requirements (see the comments in pyproject.toml). Then check that the package imports next to
# flytekit and that both console scripts are there. The temp dir is removed on exit.
#
#   tools/check_pip_install.sh [REPO]        REPO: the checkout to install (default: this one)
#   PIP_INSTALL_LIMIT=300   seconds pip may take (default 300: the goal is under 120 s, slower
#                           prints a warning; a resolver that backtracks takes 10+ minutes)
#   PIP_INSTALL_EXTRAS=aws,gcp   extras to install ("" for none)
#   PYTHON=python3          interpreter for the venv
set -euo pipefail

repo="$(cd "${1:-$(dirname "$0")/..}" && pwd)"
limit="${PIP_INSTALL_LIMIT:-300}"
goal=120
extras="${PIP_INSTALL_EXTRAS-aws,gcp}"
python="${PYTHON:-python3}"
target="$repo"
[ -n "$extras" ] && target="$repo[$extras]"

tmp="$(mktemp -d "${TMPDIR:-/tmp}/check-pip-install.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

if ! "$python" -m venv "$tmp/venv" >"$tmp/venv.log" 2>&1; then
  cat "$tmp/venv.log" >&2
  echo "check_pip_install: '$python -m venv' failed (on Debian/Ubuntu: apt-get install python3-venv)" >&2
  exit 1
fi
pip=("$tmp/venv/bin/python" -m pip)
echo "==> $("${pip[@]}" --version | cut -d' ' -f1,2) ($("$tmp/venv/bin/python" -V)): pip install --no-cache-dir '$target' (limit ${limit}s)"

start=$(date +%s.%N)
rc=0
timeout --kill-after=10 "$limit" "${pip[@]}" install --no-cache-dir --disable-pip-version-check --progress-bar off \
  "$target" >"$tmp/pip.log" 2>&1 || rc=$?
elapsed=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')

if [ "$rc" -ne 0 ]; then
  tail -n 40 "$tmp/pip.log" >&2
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    echo "check_pip_install: FAIL: pip did not finish in ${limit}s. Releases fetched, by package (backtracking?):" >&2
    grep -oE '^ *(Downloading|Using cached|Processing) [^ ]+' "$tmp/pip.log" | awk '{ print $NF }' \
      | sed -E 's#.*/##; s/-[0-9].*//' | tr 'A-Z_' 'a-z-' | sort | uniq -c | sort -rn | head -n 5 >&2 || true
    echo "  look closer with: pip install --dry-run --ignore-installed --report out.json -v '$target'" >&2
  else
    echo "check_pip_install: FAIL: pip install exited $rc after ${elapsed}s" >&2
  fi
  exit 1
fi
count=$(grep -E '^Successfully installed' "$tmp/pip.log" | wc -w || true)
echo "    installed $((count > 2 ? count - 2 : 0)) distributions in ${elapsed}s"
if awk -v e="$elapsed" -v g="$goal" 'BEGIN { exit !(e > g) }'; then
  echo "check_pip_install: WARNING: ${elapsed}s is over the ${goal}s goal (a loaded machine or slow index?)" >&2
fi

if ! "$tmp/venv/bin/python" -c 'import flytekit, flyte_private_registry; from flyte_private_registry import PrivateRegistry'; then
  echo "check_pip_install: FAIL: the installed package does not import (traceback above)" >&2
  exit 1
fi
for script in flyte-private-registry docker-credential-flyte-private-registry; do
  if [ ! -x "$tmp/venv/bin/$script" ]; then
    echo "check_pip_install: FAIL: console script $script is missing" >&2
    exit 1
  fi
done
"$tmp/venv/bin/flyte-private-registry" --help >/dev/null
echo "check_pip_install: OK: pip install '$target' took ${elapsed}s (limit ${limit}s); imports and console scripts work"
