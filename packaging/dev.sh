#!/usr/bin/env bash
# Developer entry point: the two README commands.
#   bash packaging/dev.sh run    set up (once) and start photosift
#   bash packaging/dev.sh test   set up (once, with the training extra) and run the test suite
# Extra arguments after `test` go to pytest (e.g. `-m slow`).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=.venv

ensure_venv() {
  if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv "$VENV"
    "$VENV/bin/pip" install -q --upgrade pip
  fi
}

install() {  # $1: extras, e.g. "gui" or "gui,train,test"
  local stamp="$VENV/.installed-$1-$(sha1sum pyproject.toml constraints.txt | sha1sum | cut -c1-12)"
  if [ ! -f "$stamp" ]; then
    echo "photosift: installing dependencies ($1) ..." >&2
    "$VENV/bin/pip" install -q -c constraints.txt -e ".[$1]"
    touch "$stamp"
  fi
}

cmd=${1:-run}
shift || true
case "$cmd" in
  run)
    ensure_venv
    install gui
    exec "$VENV/bin/python" -m app "$@"
    ;;
  test)
    ensure_venv
    install gui,train,test
    export QT_QPA_PLATFORM=${QT_QPA_PLATFORM:-offscreen}
    set +e
    "$VENV/bin/python" -m pytest "$@"
    rc=$?
    set -e
    # pytest exits 5 when it collected nothing: for us that is a broken suite, not a pass.
    if [ "$rc" -eq 5 ]; then echo "photosift: no tests were collected" >&2; exit 1; fi
    exit "$rc"
    ;;
  *)
    echo "usage: bash packaging/dev.sh run|test [args]" >&2
    exit 2
    ;;
esac
