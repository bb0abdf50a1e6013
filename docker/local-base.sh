#!/usr/bin/env bash
# A local stand-in for python:3.11-slim-bookworm on machines that reach Debian's archive but no
# image registry: debootstrap a minimal bookworm, slim it the way Debian's -slim images are
# slimmed (no docs, man pages, locales or apt lists), add Debian's Python 3.11 and tag it.
#
#   sudo docker/local-base.sh                      # tags localhost/python:3.11-bookworm
#   PYTHON_IMAGE=localhost/python:3.11-bookworm CONTAINER=podman docker/compose-smoke.sh
#
# Needs root, debootstrap and podman (or CONTAINER=docker). About a minute; ~115 MB.
set -euo pipefail
ENGINE=${CONTAINER:-$(command -v docker >/dev/null && echo docker || echo podman)}
TAG=${TAG:-localhost/python:3.11-bookworm}
ROOTFS=$(mktemp -d)
CONTEXT=$(mktemp -d)
trap 'rm -rf "$ROOTFS" "$CONTEXT"' EXIT

debootstrap --variant=minbase bookworm "$ROOTFS" >/dev/null
rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/cache/apt/*.bin \
  "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/usr/share/doc/* "$ROOTFS"/usr/share/man/* \
  "$ROOTFS"/usr/share/info/*
find "$ROOTFS"/usr/share/locale -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
# what Debian's slim images configure: later packages install without these paths either
printf '%s\n' 'path-exclude /usr/share/doc/*' 'path-exclude /usr/share/man/*' \
  'path-exclude /usr/share/info/*' 'path-exclude /usr/share/locale/*' \
  'path-include /usr/share/locale/locale.alias' > "$ROOTFS"/etc/dpkg/dpkg.cfg.d/docker-slim
tar -C "$ROOTFS" -c . | "$ENGINE" import - localhost/debian:bookworm-slim >/dev/null

cat > "$CONTEXT"/Containerfile <<'CONTAINERFILE'
FROM localhost/debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv python-is-python3 ca-certificates \
 && apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \
 && find /usr/lib/python3.11 -name __pycache__ -prune -exec rm -rf {} + \
 && rm -rf /usr/lib/python3.11/test /usr/lib/python3.11/idlelib /usr/lib/python3.11/tkinter
CONTAINERFILE
FORMAT=()
[ "$ENGINE" = podman ] && FORMAT=(--format docker)
"$ENGINE" build "${FORMAT[@]}" -q -t "$TAG" "$CONTEXT" >/dev/null
echo "$TAG: $("$ENGINE" image inspect "$TAG" --format '{{.Size}}') bytes"
