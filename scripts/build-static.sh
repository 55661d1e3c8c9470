#!/usr/bin/env bash
# Builds switchyard as one statically linked x86-64 binary against musl, for `Dockerfile.static`
# (FROM scratch) and for hosts whose C library we do not know. musl, not a glibc-static link:
# glibc resolves host names through NSS modules it loads at run time, which a scratch image
# does not have. Checks the result: linked statically, `--version` runs, and the binary serves
# the REST API on a free port from an otherwise empty root directory (`unshare --root`, like a
# scratch image), so a missing file or loader shows here rather than in a container.
#
# Two ways to get a musl standard library, tried in this order:
#   1. rustup's, when `rustup target add x86_64-unknown-linux-musl` has been run;
#   2. Debian's toolchain (packages rustc-web cargo-web rust-web-src, plus musl-tools and
#      libunwind-22-dev; `--install` installs them): the standard library is built from source
#      for musl (`-Zbuild-std`, unlocked on a stable compiler by RUSTC_BOOTSTRAP=1, which is
#      how Rust's own build uses it), linked by musl-gcc against musl's crt files and LLVM's
#      libunwind. That libunwind.a was compiled against glibc with _FORTIFY_SOURCE and calls
#      __fprintf_chk, which musl lacks: a four-line shim (below) forwards it to vfprintf.
#
# Usage: scripts/build-static.sh [--install] [--out PATH]
#   --install   apt-get install the Debian packages route 2 needs (root)
#   --out PATH  where the binary goes (default target/x86_64-unknown-linux-musl/release/switchyard,
#               the path Dockerfile.static copies)
# Build trees: route 1 uses target/, route 2 target/static/ (a different compiler).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { printf 'build-static.sh: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

triple=x86_64-unknown-linux-musl
out="target/$triple/release/switchyard"
install=0
while [ "$#" -gt 0 ]; do
    case "$1" in
        --install) install=1 ;;
        --out) [ "$#" -ge 2 ] || die "--out needs a path"; out="$2"; shift ;;
        -h | --help) sed -n '2,21p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
    shift
done

if [ "$install" -eq 1 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
        rustc-web cargo-web rust-web-src musl-tools libunwind-22-dev >/dev/null
fi
command -v musl-gcc >/dev/null 2>&1 || die "musl-gcc not found (apt-get install musl-tools)"

# The C parts (SQLite, ring) are compiled by the cc crate, which picks musl-gcc for this target.
export CC_x86_64_unknown_linux_musl=musl-gcc
export CARGO_TARGET_X86_64_UNKNOWN_LINUX_MUSL_LINKER=musl-gcc

rustup_musl=""
if command -v rustc >/dev/null 2>&1; then
    libdir="$(rustc --print target-libdir --target "$triple" 2>/dev/null || true)"
    if [ -n "$libdir" ] && ls "$libdir"/libstd-*.rlib >/dev/null 2>&1; then
        rustup_musl=1
    fi
fi

if [ -n "$rustup_musl" ]; then
    log "route 1: rustup's musl standard library"
    target_dir=target
    cargo build --release --locked --target "$triple" --bin switchyard
else
    debian_rustc=/usr/bin/rustc
    debian_cargo=/usr/bin/cargo
    src=/usr/lib/rustlib/src/rust/library
    for f in "$debian_rustc" "$debian_cargo" "$src/Cargo.lock"; do
        [ -e "$f" ] || die "no rustup musl target and no Debian toolchain ($f missing): run with --install, or rustup target add $triple"
    done
    unwind=/usr/lib/llvm-22/lib/libunwind.a
    [ -e "$unwind" ] || die "$unwind missing (apt-get install libunwind-22-dev)"
    log "route 2: $("$debian_rustc" --version), standard library built from $src"
    target_dir=target/static
    native="$target_dir/native"
    mkdir -p "$native"
    # Only the static archive in its own directory, so the linker cannot pick the .so.
    cp "$unwind" "$native/libunwind.a"
    cat >"$native/fortify_shim.c" <<'EOF'
#include <stdarg.h>
#include <stdio.h>
int __fprintf_chk(FILE *f, int flag, const char *fmt, ...) {
    (void)flag;
    va_list ap; va_start(ap, fmt); int r = vfprintf(f, fmt, ap); va_end(ap); return r;
}
EOF
    musl-gcc -O2 -c "$native/fortify_shim.c" -o "$native/fortify_shim.o"
    ar rcs "$native/libfortify_shim.a" "$native/fortify_shim.o"
    native_abs="$(cd "$native" && pwd)"
    # link-self-contained=no: Debian ships no musl crt objects inside the rustlib tree; musl-gcc
    # brings its own. relocation-model=static + -static: a plain static executable (no loader).
    RUSTC="$debian_rustc" RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR="$target_dir" \
        RUSTFLAGS="-C link-self-contained=no -C target-feature=+crt-static -C relocation-model=static -C link-arg=-static -L native=$native_abs -l static=fortify_shim" \
        "$debian_cargo" build --release --locked --target "$triple" --bin switchyard \
        -Zbuild-std=std,panic_abort
fi

built="$target_dir/$triple/release/switchyard"
[ -x "$built" ] || die "no $built after the build"
if [ "$built" != "$out" ]; then
    mkdir -p "$(dirname "$out")"
    cp "$built" "$out"
fi

# Checks: static, runs, serves from an empty root.
if command -v file >/dev/null 2>&1; then
    file "$out" | grep -q 'statically linked' || die "$out is not statically linked: $(file "$out")"
fi
if command -v readelf >/dev/null 2>&1 && readelf -l "$out" | grep -q INTERP; then
    die "$out asks for a program interpreter (dynamic loader)"
fi
"$out" --version >/dev/null || die "$out --version failed"
log "$("$out" --version): statically linked ($(du -h "$out" | cut -f1))"

if command -v unshare >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ]; then
    root="$(mktemp -d "${TMPDIR:-/tmp}/switchyard-static-root.XXXXXX")"
    trap 'rm -rf "$root"' EXIT
    mkdir -p "$root/bin" "$root/data"
    cp "$out" "$root/bin/switchyard"
    port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
    # Only the admin API, on a free port: the check must not collide with anything else.
    env -i SWITCHYARD_NODE__DATA_DIR=/data SWITCHYARD_DASHBOARD__LISTENERS__HTTP__BIND="127.0.0.1:$port" \
        SWITCHYARD_LISTENERS__TCP__DEFAULT__ENABLE=false SWITCHYARD_LISTENERS__WS__DEFAULT__ENABLE=false \
        SWITCHYARD_GATEWAY__MQTTSN__ENABLE=false SWITCHYARD_GATEWAY__COAP__ENABLE=false \
        SWITCHYARD_GATEWAY__LWM2M__ENABLE=false \
        unshare --root="$root" /bin/switchyard run >"$root/log" 2>&1 &
    pid=$!
    ok=""
    for _ in $(seq 1 100); do
        if curl -fsS "http://127.0.0.1:$port/api/v5/status" >/dev/null 2>&1; then ok=1; break; fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    [ -n "$ok" ] || { tail -20 "$root/log" >&2; die "the static binary did not serve /api/v5/status from an empty root"; }
    log "served /api/v5/status from an empty root directory"
fi
echo "$out"
