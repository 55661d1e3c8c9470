#!/usr/bin/env bash
# Builds the Debian package of switchyard from [package.metadata.deb] in Cargo.toml (the table
# cargo-deb reads) with dpkg-deb alone, and checks it: `dpkg-deb -I` (control) and `dpkg-deb -c`
# (contents: the binary, /etc/switchyard with switchyard.toml, acl.toml and the LwM2M object
# files, the systemd unit, /var/lib/switchyard), the unit's readiness and limits, and the
# packaged binary accepting the packaged configuration. With --image it also builds the
# container image (Dockerfile) with podman, or docker when its daemon answers. With
# --static-image it builds the FROM scratch image (Dockerfile.static) around the static musl
# binary of scripts/build-static.sh with podman and checks it: started on free ports, it
# answers /api/v5/status and an MQTT publish, and stops cleanly on SIGTERM.
#
# Usage: scripts/package.sh [--release | --debug | --binary PATH] [--out DIR] [--image]
#   --release      package target/release/switchyard (the default; build it first with
#                  `cargo build --release --bin switchyard`)
#   --debug        package target/debug/switchyard (what the tests build; faster compression)
#   --binary PATH  package that binary (e.g. a static musl build)
#   --out DIR      where the .deb goes (default target/package)
#   --image        also build the container image switchyard:<version>
#   --static-image also build and check switchyard:<version>-static (podman; extra podman
#                  flags from PODMAN_FLAGS, e.g. "--storage-driver vfs --runtime runc
#                  --cgroup-manager cgroupfs" inside a container; run flags from
#                  PODMAN_RUN_FLAGS, e.g. "--ulimit nofile=10000:10000 --ulimit nproc=1000:1000")
#
# Needs: bash, cargo (for `cargo metadata`), python3, dpkg-deb; strip and objdump (binutils)
# when present. Prints the path of the .deb on its last line.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { printf 'package.sh: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

profile="release"
binary=""
out="target/package"
image=0
static_image=0
while [ "$#" -gt 0 ]; do
    case "$1" in
        --release) profile="release" ;;
        --debug) profile="debug" ;;
        --binary) [ "$#" -ge 2 ] || die "--binary needs a path"; binary="$2"; shift ;;
        --out) [ "$#" -ge 2 ] || die "--out needs a directory"; out="$2"; shift ;;
        --image) image=1 ;;
        --static-image) static_image=1 ;;
        -h | --help) sed -n '2,26p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
    shift
done

for tool in cargo python3 dpkg-deb; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool not found"
done
if [ -z "$binary" ]; then
    binary="target/$profile/switchyard"
    if [ ! -x "$binary" ]; then
        build="cargo build --bin switchyard"
        [ "$profile" = "release" ] && build="cargo build --release --bin switchyard"
        die "no $binary: build it first ($build)"
    fi
fi
[ -x "$binary" ] || die "$binary is not an executable"

version="$("$binary" --version | awk '{ print $2 }')"
[ -n "$version" ] || die "$binary --version printed no version"
arch="$(dpkg --print-architecture 2>/dev/null || echo amd64)"
pkg="switchyard_${version}_${arch}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
stage="$out/$pkg"
deb="$out/$pkg.deb"
rm -rf "$stage" "$deb"
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/DEBIAN"

# [package.metadata.deb] as shell assignments.
meta="$(cargo metadata --no-deps --format-version 1 --manifest-path Cargo.toml | python3 -c '
import json, shlex, sys
pkg = next(p for p in json.load(sys.stdin)["packages"] if p["name"] == "switchyard")
deb = pkg["metadata"]["deb"]
q = shlex.quote
for key in ("maintainer", "section", "priority", "depends", "maintainer-scripts"):
    print("%s=%s" % (key.replace("-", "_"), q(deb.get(key, ""))))
print("summary=%s" % q(pkg.get("description") or "switchyard"))
print("extended=%s" % q(deb.get("extended-description", "")))
print("assets=(%s)" % " ".join(q("|".join(a)) for a in deb["assets"]))
print("conffiles=(%s)" % " ".join(q(c) for c in deb.get("conf-files", [])))
')"
eval "$meta"

scripts/packaged-config.sh config/switchyard.toml "$out/switchyard.toml"

# Assets: [source, destination (a directory when it ends in /), mode].
for asset in "${assets[@]}"; do
    IFS='|' read -r src dest mode <<<"$asset"
    case "$src" in
        target/release/switchyard) sources=("$binary") ;;
        target/package/switchyard.toml) sources=("$out/switchyard.toml") ;;
        *)
            mapfile -t sources < <(compgen -G "$src" || true)
            [ "${#sources[@]}" -gt 0 ] || die "asset $src matches no file"
            ;;
    esac
    for file in "${sources[@]}"; do
        target="$stage/$dest"
        case "$dest" in */) target="$target$(basename "$file")" ;; esac
        [ "$(basename "$file")" = "switchyard" ] && [ "$file" = "$binary" ] && target="$stage/${dest%/}/switchyard"
        install -D -m "$mode" "$file" "$target"
    done
done
# Debug information stays out of the package (backtraces keep function names).
if command -v strip >/dev/null 2>&1; then
    strip --strip-debug "$stage/usr/bin/switchyard"
fi
install -d -m 0755 "$stage/var/lib/switchyard" "$stage/var/log/switchyard"

# `$auto`: the newest glibc symbol version the binary needs (nothing for a static binary).
auto=""
if command -v objdump >/dev/null 2>&1; then
    glibc="$(objdump -T "$stage/usr/bin/switchyard" 2>/dev/null \
        | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -u -V | tail -n1 || true)"
    [ -n "$glibc" ] && auto="libc6 (>= $glibc)"
elif file "$stage/usr/bin/switchyard" 2>/dev/null | grep -q 'dynamically linked'; then
    auto="libc6"
fi
depends="$(python3 -c '
import sys
parts = [p.strip() for p in sys.argv[1].split(",")]
parts = [sys.argv[2] if p == "$auto" else p for p in parts]
print(", ".join(p for p in parts if p))
' "$depends" "$auto")"

for script in preinst postinst prerm postrm; do
    if [ -f "$maintainer_scripts$script" ]; then
        install -m 0755 "$maintainer_scripts$script" "$stage/DEBIAN/$script"
    fi
done
printf '%s\n' "${conffiles[@]}" >"$stage/DEBIAN/conffiles"
installed_size="$(du -sk --exclude=DEBIAN "$stage" | cut -f1)"
{
    echo "Package: switchyard"
    echo "Version: $version"
    echo "Architecture: $arch"
    echo "Maintainer: $maintainer"
    echo "Installed-Size: $installed_size"
    [ -n "$depends" ] && echo "Depends: $depends"
    echo "Section: $section"
    echo "Priority: $priority"
    echo "Description: $summary"
    # Continuation lines start with a space; an empty line is " .".
    printf '%s\n' "$extended" | fold -s -w 78 | sed 's/ *$//; s/^$/./; s/^/ /'
} >"$stage/DEBIAN/control"

compress=(-Zxz)
[ "$profile" = "debug" ] && compress=(-Zgzip -z1)
dpkg-deb --root-owner-group "${compress[@]}" --build "$stage" "$deb" >/dev/null

# --- checks -------------------------------------------------------------------------------
info="$(dpkg-deb -I "$deb")"
contents="$(dpkg-deb -c "$deb")"
printf '%s\n' "$info" >&2
for field in "Package: switchyard" "Version: $version" "Architecture: $arch"; do
    grep -qF " $field" <<<"$info" || die "control lacks '$field'"
done
for path in ./usr/bin/switchyard ./etc/switchyard/switchyard.toml ./etc/switchyard/acl.toml \
    ./etc/switchyard/lwm2m_xml/ ./lib/systemd/system/switchyard.service ./var/lib/switchyard/ \
    ./var/log/switchyard/; do
    grep -qE " ${path//./\\.}\$" <<<"$contents" || die "the package lacks $path"
done
xmls="$(grep -c ' \./etc/switchyard/lwm2m_xml/.*\.xml$' <<<"$contents" || true)"
[ "$xmls" -ge 1 ] || die "no LwM2M object files in the package"
grep -qE '^-rwxr-xr-x root/root .* \./usr/bin/switchyard$' <<<"$contents" \
    || die "usr/bin/switchyard is not root-owned mode 755"
unit="$stage/lib/systemd/system/switchyard.service"
for line in Type=notify LimitNOFILE=1048576 User=switchyard KillSignal=SIGTERM; do
    grep -qx "$line" "$unit" || die "the unit lacks $line"
done
"$stage/usr/bin/switchyard" check-config --config "$stage/etc/switchyard/switchyard.toml" >/dev/null \
    || die "the packaged binary refuses the packaged configuration"
log "contents:"
printf '%s\n' "$contents" | sed 's/^/  /' >&2
log "built $deb ($(du -h "$deb" | cut -f1), $xmls LwM2M object files)"

# --- container image ----------------------------------------------------------------------
if [ "$image" -eq 1 ]; then
    if command -v podman >/dev/null 2>&1; then
        podman build -f Dockerfile -t "switchyard:$version" .
    elif command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
        docker build -f Dockerfile -t "switchyard:$version" .
    else
        log "neither podman nor a docker daemon: image not built"
    fi
fi

if [ "$static_image" -eq 1 ]; then
    command -v podman >/dev/null 2>&1 || die "--static-image needs podman"
    static_bin="target/x86_64-unknown-linux-musl/release/switchyard"
    [ -x "$static_bin" ] || die "no $static_bin: run scripts/build-static.sh first"
    scripts/packaged-config.sh config/switchyard.toml target/package/switchyard.toml
    tag="switchyard:$version-static"
    # shellcheck disable=SC2086 # word splitting of the flag lists is wanted
    podman ${PODMAN_FLAGS:-} build --format docker -q -f Dockerfile.static -t "$tag" . >/dev/null
    log "built image $tag"
    free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
    api=$(free_port)
    mqtt=$(free_port)
    name="switchyard-check-$$"
    # shellcheck disable=SC2086
    podman ${PODMAN_FLAGS:-} run -d --name "$name" --network host ${PODMAN_RUN_FLAGS:-} \
        -e SWITCHYARD_DASHBOARD__LISTENERS__HTTP__BIND="127.0.0.1:$api" \
        -e SWITCHYARD_LISTENERS__TCP__DEFAULT__BIND="127.0.0.1:$mqtt" \
        -e SWITCHYARD_LISTENERS__WS__DEFAULT__ENABLE=false \
        -e SWITCHYARD_GATEWAY__MQTTSN__ENABLE=false -e SWITCHYARD_GATEWAY__COAP__ENABLE=false \
        -e SWITCHYARD_GATEWAY__LWM2M__ENABLE=false "$tag" >/dev/null
    # shellcheck disable=SC2086
    cleanup_container() { podman ${PODMAN_FLAGS:-} rm -f "$name" >/dev/null 2>&1 || true; }
    trap cleanup_container EXIT
    up=""
    for _ in $(seq 1 100); do
        if curl -fsS "http://127.0.0.1:$api/api/v5/status" >/dev/null 2>&1; then up=1; break; fi
        sleep 0.1
    done
    # shellcheck disable=SC2086
    [ -n "$up" ] || { podman ${PODMAN_FLAGS:-} logs "$name" >&2 || true; die "the image did not answer /api/v5/status"; }
    if command -v mosquitto_pub >/dev/null 2>&1; then
        mosquitto_pub -h 127.0.0.1 -p "$mqtt" -q 1 -t package/check -m ok \
            || die "the image refused an MQTT publish"
    fi
    # shellcheck disable=SC2086
    podman ${PODMAN_FLAGS:-} stop -t 15 "$name" >/dev/null
    # shellcheck disable=SC2086
    podman ${PODMAN_FLAGS:-} logs "$name" 2>&1 | grep -q 'switchyard::startup: stopped' \
        || die "the container did not stop cleanly on SIGTERM"
    log "image $tag: served the API and MQTT, stopped cleanly on SIGTERM"
fi

echo "$deb"
