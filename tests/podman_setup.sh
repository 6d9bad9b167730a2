#!/usr/bin/env bash
# Idempotent: configure podman for these machines (runc, cgroupfs, explicit ulimits; see README
# "Podman") and serve its Docker-compatible API on $PODMAN_SOCKET.
set -euo pipefail
: "${PODMAN_SOCKET:=/run/podman/podman.sock}"
conf=/etc/containers/containers.conf
if ! grep -q 'sandbox-ci' "$conf" 2>/dev/null; then
  mkdir -p /etc/containers
  cat > "$conf" <<'TOML'
# sandbox-ci: crun fails on hybrid cgroups here; runc needs explicit ulimits.
[containers]
default_ulimits = [ "nofile=16384:16384", "nproc=16384:16384" ]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
TOML
fi
if curl -sf --unix-socket "$PODMAN_SOCKET" http://d/_ping >/dev/null 2>&1; then
  exit 0
fi
mkdir -p "$(dirname "$PODMAN_SOCKET")"
# From /: the service (and every conmon it forks) keeps its working directory, and a checkout
# deleted under it makes conmon fail ("Failed to get working directory", runc "broken pipe").
(cd / && nohup podman system service --time=0 "unix://$PODMAN_SOCKET" >/tmp/podman-service.log 2>&1 &)
for _ in $(seq 1 100); do
  curl -sf --unix-socket "$PODMAN_SOCKET" http://d/_ping >/dev/null 2>&1 && exit 0
  sleep 0.1
done
echo "podman API did not answer on $PODMAN_SOCKET; see /tmp/podman-service.log" >&2
exit 1
