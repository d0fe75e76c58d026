#!/usr/bin/env bash
# Installs the peers the benchmarks compare against (Debian packages): PMDK's libpmemobj for
# heap-bench, SQLite and LMDB for storage-bench.
set -euo pipefail
packages=(libpmemobj-dev libsqlite3-dev liblmdb-dev)
missing=()
for package in "${packages[@]}"; do
  dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}"
fi
