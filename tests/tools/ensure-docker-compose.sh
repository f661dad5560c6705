#!/usr/bin/env bash
# Prints a Docker Compose command that can validate docker-compose.yml offline, installing
# Debian's docker-compose (v1) when none is there. Quick and idempotent: nothing is installed
# when a compose command already works, and `apt-get update` runs only if the install needs it.
# No Docker engine is needed (and none is pulled in: --no-install-recommends skips docker.io).
set -euo pipefail

if command -v docker-compose >/dev/null 2>&1; then
  echo docker-compose
  exit 0
fi
if command -v docker >/dev/null 2>&1 && docker compose version >/dev/null 2>&1; then
  echo "docker compose"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure-docker-compose: no docker-compose and no apt-get; install Docker Compose" >&2
  exit 1
fi

sudo=()
if [ "$(id -u)" -ne 0 ]; then sudo=(sudo -n); fi
export DEBIAN_FRONTEND=noninteractive
install() { "${sudo[@]}" apt-get install -y -qq --no-install-recommends docker-compose >&2; }
if ! install; then
  "${sudo[@]}" apt-get update -qq >&2
  install
fi
command -v docker-compose >/dev/null 2>&1
echo docker-compose
