# Sourced: point the docker SDK, the docker CLI and testcontainers at podman's Docker API.
export PODMAN_SOCKET="${PODMAN_SOCKET:-/run/podman/podman.sock}"
export DOCKER_HOST="unix://${PODMAN_SOCKET}"
export TESTCONTAINERS_RYUK_DISABLED=true
export TESTCONTAINERS_CONNECTION_MODE=docker_host
