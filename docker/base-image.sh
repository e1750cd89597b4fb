#!/usr/bin/env bash
# Makes a Debian 12 (bookworm) base image without Docker Hub: debootstrap a minimal root file
# system from the Debian mirror apt already uses, then `docker import` it. Needs root, debootstrap
# and a running Docker daemon. What docker/check.sh builds on when no base image is given.
#
#   docker/base-image.sh [image tag, default mlsam-base/debian:bookworm] [mirror, default from /etc/apt]
set -euo pipefail
tag=${1:-mlsam-base/debian:bookworm}
mirror=${2:-}
if [ -z "$mirror" ]; then
  # The first Debian mirror of this machine's apt sources (deb822 or one-line format).
  mirror=$(grep -rhoE '(URIs:|^deb) +https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null \
    | head -1 | grep -oE 'https?://[^ ]+' || true)
  mirror=${mirror:-http://deb.debian.org/debian}
fi
mirror=${mirror%/}
command -v debootstrap >/dev/null || { echo "debootstrap missing: apt-get install -y debootstrap" >&2; exit 1; }
root=$(mktemp -d /tmp/mlsam-rootfs-XXXXXX)
trap 'rm -rf "$root"' EXIT
echo "debootstrap bookworm from $mirror into $root"
debootstrap --variant=minbase bookworm "$root" "$mirror" >"$root.log" 2>&1 || { tail -20 "$root.log" >&2; exit 1; }
rm -f "$root.log"
security=${mirror%/debian}/debian-security
cat >"$root/etc/apt/sources.list" <<SOURCES
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb $security bookworm-security main
SOURCES
# As Docker's Debian images do: no apt caches, no recommends.
printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' >"$root/etc/apt/apt.conf.d/90mlsam-no-recommends"
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb
tar -C "$root" --numeric-owner -c . | docker import --change 'CMD ["bash"]' - "$tag" >/dev/null
echo "base image $tag ($(docker image inspect -f '{{.Size}}' "$tag" | awk '{printf "%.0f MB", $1/1e6}'))"
