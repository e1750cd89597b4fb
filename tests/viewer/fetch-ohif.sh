#!/usr/bin/env bash
# Fetches the built OHIF Viewer (the dist/ inside the npm tarball of @ohif/app) into a cache outside
# the repository, once: $MLSAM_OHIF_CACHE (default ~/.cache/mlsam/ohif)/<version>/dist. The tarball
# comes from the npm registry with `npm pack` and is checked against its published sha512 before it
# is unpacked. Prints the dist folder. Never writes into the repository.
set -euo pipefail

version=3.13.2
# npm view @ohif/app@3.13.2 dist.integrity
integrity='sha512-WZdxmpmG7rqFgW9ZJLcbgr3XCtLi1KDNPoMaeY5PPe6j4G4fjEjjkycZM6C6Zk2F87BKxFfpq+jd5xXZB9E8EA=='
cache="${MLSAM_OHIF_CACHE:-${HOME:-/root}/.cache/mlsam/ohif}"
dest="$cache/$version"

if [ -f "$dest/dist/index.html" ] && [ -f "$dest/dist/app-config.js" ]; then
  echo "$dest/dist"
  exit 0
fi

mkdir -p "$cache"
work="$(mktemp -d "$cache/.fetch-XXXXXX")"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "@ohif/app@$version" >/dev/null)
tgz="$work/ohif-app-$version.tgz"
[ -f "$tgz" ] || { echo "npm pack did not produce $tgz" >&2; exit 1; }
got="sha512-$(node -e 'process.stdout.write(require("crypto").createHash("sha512").update(require("fs").readFileSync(process.argv[1])).digest("base64"))' "$tgz")"
if [ "$got" != "$integrity" ]; then
  echo "integrity mismatch for @ohif/app@$version: $got" >&2
  exit 1
fi
mkdir -p "$work/x"
tar -xzf "$tgz" -C "$work/x" package/dist
rm -rf "$dest"
mkdir -p "$dest"
mv "$work/x/package/dist" "$dest/dist"
echo "$dest/dist"
