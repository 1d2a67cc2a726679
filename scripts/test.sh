#!/usr/bin/env bash
# The project's single test command.
#
#   bash scripts/test.sh
#
# 1. installs what the suites need (idempotent; quick when already there):
#    - .venv with python-qpid-proton, pytest, pytest-timeout (interop/requirements.txt);
#      python-qpid-proton has no wheel on PyPI for Linux, so pip builds it from the sdist:
#      the C compiler, pkg-config, libssl-dev and Python headers come from apt if missing;
#    - rhea in interop/node/node_modules (npm ci from the committed package-lock.json);
#    - mosquitto-clients (mosquitto_pub/_sub) from apt;
# 2. cargo build --release --workspace --all-targets
# 3. cargo test --release --workspace            (same target dir: reuses the build)
# 4. the black-box interop suite (pytest interop/: python-qpid-proton and rhea clients)
#    against target/release/throng, ending with one line "N passed, N failed".
#
# Exits non-zero if anything failed.
# Environment: PYTHON (default python3) picks the interpreter for the venv;
# SKIP_CARGO=1 skips steps 2-3 (for iterating on the interop suite with an existing build);
# PYTEST_ARGS adds arguments to pytest (e.g. PYTEST_ARGS="-k queue");
# THRONG_BIN overrides the server binary under test.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

export PYTHONDONTWRITEBYTECODE=1
export PIP_DISABLE_PIP_VERSION_CHECK=1
PY="${PYTHON:-python3}"
VENV="$ROOT/.venv"
NODE_DIR="$ROOT/interop/node"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
INTEROP_TIMEOUT_SECS="${INTEROP_TIMEOUT_SECS:-1200}"

log() { printf '\n==> %s\n' "$*"; }

# ---- setup helpers -------------------------------------------------------------------

APT_UPDATED=0
apt_install() { # apt_install PKG...: install the given Debian packages (no-op without arguments)
    (($#)) || return 0
    local sudo=()
    if [[ $(id -u) -ne 0 ]]; then
        if command -v sudo >/dev/null; then sudo=(sudo); else
            echo "error: need root (or sudo) to apt-get install $*" >&2
            return 1
        fi
    fi
    log "apt-get install $*"
    if ((!APT_UPDATED)); then
        "${sudo[@]}" apt-get update -qq
        APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "$@"
}

deb_missing() { # print those of the given Debian packages that are not installed
    local p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || echo "$p"
    done
}

venv_ok() {
    [[ -x "$VENV/bin/python" ]] &&
        cmp -s "$ROOT/interop/requirements.txt" "$VENV/.interop-requirements" &&
        "$VENV/bin/python" -c 'import proton, pytest, pytest_timeout, paho.mqtt' 2>/dev/null
}

setup_python() {
    if venv_ok; then
        echo "python venv up to date ($VENV)"
        return
    fi
    log "setting up $VENV"
    if ! [[ -x "$VENV/bin/python" && -x "$VENV/bin/pip" ]]; then
        rm -rf "$VENV"
        if ! "$PY" -m venv "$VENV" >/dev/null 2>&1; then
            # Debian's own python3 needs python3-venv for `-m venv` (ensurepip).
            rm -rf "$VENV"
            apt_install python3-venv
            "$PY" -m venv "$VENV"
        fi
    fi
    if ! "$VENV/bin/python" -c 'import proton' 2>/dev/null; then
        # Build requirements of the python-qpid-proton sdist (cffi extension over proton-c).
        local need=()
        command -v cc >/dev/null || need+=(gcc libc6-dev)
        # shellcheck disable=SC2207
        need+=($(deb_missing pkg-config libssl-dev))
        local inc
        inc="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
        if [[ ! -f "$inc/Python.h" ]]; then
            # shellcheck disable=SC2207
            need+=($(deb_missing python3-dev))
        fi
        apt_install "${need[@]}"
    fi
    "$VENV/bin/pip" install -q -r "$ROOT/interop/requirements.txt"
    cp "$ROOT/interop/requirements.txt" "$VENV/.interop-requirements"
}

setup_node() {
    if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
        apt_install nodejs npm
    fi
    local stamp="$NODE_DIR/node_modules/.interop-package-lock.json"
    if [[ -d "$NODE_DIR/node_modules/rhea" ]] && cmp -s "$NODE_DIR/package-lock.json" "$stamp"; then
        echo "node modules up to date ($NODE_DIR/node_modules)"
        return
    fi
    log "npm ci in interop/node"
    (cd "$NODE_DIR" && npm ci --no-audit --no-fund --loglevel=error)
    cp "$NODE_DIR/package-lock.json" "$stamp"
}

setup_debian_tools() {
    # mosquitto_pub / mosquitto_sub for the MQTT interop tests
    # shellcheck disable=SC2207
    local need=($(deb_missing mosquitto-clients))
    apt_install "${need[@]}"
}

# ---- 1. dependencies -----------------------------------------------------------------

log "test dependencies"
command -v cargo >/dev/null || { echo "error: cargo not found (install Rust)" >&2; exit 1; }
setup_python
setup_node
setup_debian_tools

# ---- 2./3. cargo ---------------------------------------------------------------------

cargo_test_rc=0
if [[ "${SKIP_CARGO:-0}" != 1 ]]; then
    log "cargo build --release --workspace --all-targets"
    cargo build --release --workspace --all-targets

    log "cargo test --release --workspace"
    cargo test --release --workspace || cargo_test_rc=$?
fi

# ---- 4. interop ----------------------------------------------------------------------

export THRONG_BIN="${THRONG_BIN:-$TARGET_DIR/release/throng}"
log "interop suite against $THRONG_BIN"
report_dir="$(mktemp -d)"
trap 'rm -rf "$report_dir"' EXIT
junit="$report_dir/interop.xml"
interop_rc=0
# shellcheck disable=SC2086
timeout --signal=INT --kill-after=60 "$INTEROP_TIMEOUT_SECS" \
    "$VENV/bin/python" -m pytest "$ROOT/interop" -v --junitxml="$junit" ${PYTEST_ARGS:-} ||
    interop_rc=$?

# Count per test case: a case with a failure or an error (also in setup/teardown) failed.
counts="$("$VENV/bin/python" - "$junit" <<'EOF'
import sys
import xml.etree.ElementTree as ET
passed = failed = skipped = 0
try:
    root = ET.parse(sys.argv[1]).getroot()
except (OSError, ET.ParseError):
    print("0 0 0 missing")
    sys.exit(0)
for case in root.iter("testcase"):
    tags = {child.tag for child in case}
    if tags & {"failure", "error"}:
        failed += 1
    elif "skipped" in tags:
        skipped += 1
    else:
        passed += 1
print(passed, failed, skipped, "ok")
EOF
)"
read -r passed failed skipped report <<<"$counts"

echo
status=0
if ((cargo_test_rc != 0)); then
    echo "cargo test FAILED (exit $cargo_test_rc)"
    status=1
fi
if [[ "$report" != ok ]]; then
    echo "interop: pytest wrote no report (exit $interop_rc)"
    failed=$((failed + 1))
fi
if ((interop_rc != 0)); then
    echo "interop: pytest exited $interop_rc"
    ((failed > 0)) || failed=1
    status=1
fi
if ((passed == 0)); then
    echo "interop: no test passed"
    status=1
fi
((failed == 0)) || status=1
if ((skipped > 0)); then
    echo "$passed passed, $failed failed, $skipped skipped"
else
    echo "$passed passed, $failed failed"
fi
exit "$status"
