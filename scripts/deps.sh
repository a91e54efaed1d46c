#!/usr/bin/env bash
# Installs the system packages wsmq's tests and local stack need, on Debian.
# Idempotent: does nothing when everything is present.
set -euo pipefail

need=()
command -v redis-server >/dev/null || need+=(redis-server)
command -v protoc >/dev/null || need+=(protobuf-compiler)
[ -f /usr/include/google/protobuf/timestamp.proto ] || need+=(libprotobuf-dev)
command -v docker-compose >/dev/null || need+=(docker-compose)
# The browser test needs Chromium and the load-balancer test nginx, the JS
# SDK's tests Node and tsc (node-typescript); CI asks for them with
# WSMQ_DEPS_CI=1 (make run does not need them).
if [ "${WSMQ_DEPS_CI:-0}" = 1 ]; then
  command -v chromium >/dev/null || need+=(chromium)
  command -v node >/dev/null || need+=(nodejs) # the SDK needs Node >= 20 (Debian 12 ships 18: use NodeSource)
  command -v tsc >/dev/null || need+=(node-typescript)
  command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
  # The compose test builds its stand-in base images with debootstrap.
  if docker info >/dev/null 2>&1; then
    command -v debootstrap >/dev/null || [ -x /usr/sbin/debootstrap ] || need+=(debootstrap)
  fi
fi

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "missing: ${need[*]}" >&2
  echo "install them with: sudo apt-get update && sudo apt-get install -y --no-install-recommends ${need[*]}" >&2
  exit 1
fi
echo "installing: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# The package starts a system redis on 6379; wsmq's tests never use it and
# `make run` starts its own.
if [[ " ${need[*]} " == *" redis-server "* ]]; then
  service redis-server stop >/dev/null 2>&1 || true
fi
# Likewise nginx: the test runs its own on a free port.
if [[ " ${need[*]} " == *" nginx-light "* ]]; then
  service nginx stop >/dev/null 2>&1 || true
fi
