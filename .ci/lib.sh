# Sourced by .ci/install and .ci/oldest.
pip_install() {  # pip_install VENV PIP-ARGS...: quiet; fails when pip fails
  local out rc=0
  out=$("$1/bin/python" -m pip install -q --disable-pip-version-check "${@:2}" 2>&1) || rc=$?
  # this machine's pip.conf names local indexes that may be absent: not worth a line each
  out=$(printf '%s\n' "$out" | grep -v "^WARNING: Location '.*' is ignored" || true)
  [ -z "$out" ] || printf '%s\n' "$out" >&2
  return "$rc"
}
