#!/usr/bin/env bash
# The one test command: installs the external test clients (scripts/install-test-deps.sh), then
# checks formatting (cargo fmt --check) and lints (clippy -D warnings), then runs every test of
# the workspace in debug builds (unit, integration and the black-box tests of the real binary in
# tests/). Exits non-zero on any failure.
#
# Extra arguments go to `cargo test`, e.g. `scripts/test.sh --test mqtt_raw`.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/install-test-deps.sh

# Two cores are shared by build and tests; debug builds only (no --release).
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export RUST_BACKTRACE="${RUST_BACKTRACE:-1}"

# A full disk fails the build half way with a confusing linker error; say so up front.
df -h . 2>/dev/null | sed 's/^/test.sh: disk: /' || true

status=0
if [ "$#" -eq 0 ]; then
    # Formatting and lints are part of the suite: a difference or a warning fails it.
    echo "test.sh: cargo fmt --all --check"
    cargo fmt --all --check || status=$?
    echo "test.sh: cargo clippy --workspace --all-targets -- -D warnings"
    cargo clippy --workspace --all-targets -- -D warnings || status=$?
fi
echo "test.sh: cargo test --workspace --all-targets $*"
cargo test --workspace --all-targets --no-fail-fast "$@" || status=$?
if [ "$#" -eq 0 ]; then
    # --all-targets leaves out doctests; run them too.
    echo "test.sh: cargo test --workspace --doc"
    cargo test --workspace --doc --no-fail-fast || status=$?
fi
if [ "$status" -ne 0 ]; then
    echo "test.sh: FAILED (exit $status)" >&2
fi
exit "$status"
