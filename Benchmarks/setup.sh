#!/usr/bin/env bash
# Installs the peers the benchmarks compare against (Debian packages).
set -euo pipefail
if ! dpkg -s libpmemobj-dev >/dev/null 2>&1; then
  apt-get update -qq
  apt-get install -y -qq libpmemobj-dev
fi
