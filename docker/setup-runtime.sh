#!/bin/sh
# The run-time part of both images: CA certificates (with docker/ca-certificates/), the fonts the
# Secondary Captures' burned-in text is rendered with (sharp renders SVG through fontconfig), and
# the fixed user mlsam (uid/gid 10001) owning /var/lib/mlsam, so containers of both images share
# one spool volume.
set -eu
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends ca-certificates fonts-dejavu-core fontconfig
rm -rf /var/lib/apt/lists/*
update-ca-certificates
groupadd --system --gid 10001 mlsam
useradd --system --uid 10001 --gid mlsam --home-dir /app --shell /usr/sbin/nologin mlsam
mkdir -p /var/lib/mlsam/spool
chown -R mlsam:mlsam /var/lib/mlsam
