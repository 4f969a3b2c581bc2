#!/usr/bin/env bash
# Make sure a redis-server binary is on PATH for tests/redis (they start their own server on
# a free loopback port; nothing here starts a service). Idempotent: does nothing when one is
# already installed. Needs root (or sudo) and apt-get, as on Debian/Ubuntu CI images.
set -euo pipefail

if command -v redis-server >/dev/null 2>&1; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-redis: no redis-server and no apt-get; install redis-server yourself" >&2
  exit 1
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# The package's post-install may try to start a service; CI containers have no init, which
# is harmless. Only the binary is needed.
$sudo apt-get install -y -qq --no-install-recommends redis-server >/dev/null
command -v redis-server >/dev/null 2>&1 || {
  echo "install-redis: redis-server still not on PATH after apt-get install" >&2
  exit 1
}
redis-server --version
