#!/usr/bin/env bash
# Idempotent: the local base images the container tests build from (no registry here).
#   localhost/debian:bookworm      debootstrap minbase, imported into podman (~30 s, cached)
#   localhost/sandbox-python:3.11  python3 + pip in a venv on PATH: stands in for python:3.x-slim
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# Several test sessions may call this at once: one builds, the others wait and then find it done.
exec 9>"${TMPDIR:-/tmp}/sandbox-base-images.lock"
flock 9
if ! podman image exists localhost/debian:bookworm; then
  rootfs=$(mktemp -d /var/tmp/sandbox-rootfs.XXXXXX)
  trap 'rm -rf "$rootfs"' EXIT
  debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian >/dev/null
  cat > "$rootfs/etc/apt/sources.list" <<'LIST'
deb http://deb.debian.org/debian bookworm main
deb http://deb.debian.org/debian bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
LIST
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/archives/*.deb
  if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    mkdir -p "$rootfs/usr/local/share/ca-certificates"
    cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/"
  fi
  tar --numeric-owner -C "$rootfs" -c . | podman import -q \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' --change 'CMD ["/bin/bash"]' - localhost/debian:bookworm >/dev/null
fi
if ! podman image exists localhost/sandbox-python:3.11; then
  podman build -q -t localhost/sandbox-python:3.11 "$here/python-base" >/dev/null
fi
echo "base images ready: localhost/debian:bookworm localhost/sandbox-python:3.11"
