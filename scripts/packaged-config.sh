#!/usr/bin/env bash
# Writes the configuration installed as /etc/switchyard/switchyard.toml by the .deb and the
# container images: config/switchyard.toml (every key, its default, its comment) with the paths
# of an installed node instead of the working directory's:
#   node.data_dir               data               -> /var/lib/switchyard
#   log.file.path               log/switchyard.log -> /var/log/switchyard/switchyard.log
#   gateway.lwm2m.xml_dir       config/lwm2m_xml   -> /etc/switchyard/lwm2m_xml
#   authorization.file          config/acl.toml    -> /etc/switchyard/acl.toml
# Fails if any of them is not found exactly once (the shipped file changed shape).
#
# Usage: scripts/packaged-config.sh IN OUT
set -euo pipefail

if [ "$#" -ne 2 ]; then
    echo "usage: $0 IN OUT" >&2
    exit 2
fi
in="$1"
out="$2"

mkdir -p "$(dirname "$out")"
trap 'rm -f "$out.tmp"' EXIT
# Whole lines only, so a comment that mentions a default is left alone.
awk -v src="$in" '
    BEGIN {
        to["data_dir = \"data\""] = "data_dir = \"/var/lib/switchyard\""
        to["path = \"log/switchyard.log\""] = "path = \"/var/log/switchyard/switchyard.log\""
        to["xml_dir = \"config/lwm2m_xml\""] = "xml_dir = \"/etc/switchyard/lwm2m_xml\""
        to["file = \"config/acl.toml\""] = "file = \"/etc/switchyard/acl.toml\""
    }
    ($0 in to) { seen[$0]++; print to[$0]; next }
    { print }
    END {
        for (line in to) {
            if (seen[line] != 1) {
                printf "packaged-config: expected one line %s in %s, found %d\n", line, src, seen[line] > "/dev/stderr"
                bad = 1
            }
        }
        exit bad
    }
' "$in" >"$out.tmp"
mv "$out.tmp" "$out"
