#!/usr/bin/env bash
# Installs the Debian packages the native build and the sandbox tests need.
# Quiet and fast when they are already there; prints the command when it cannot run it.
set -euo pipefail

# libuv1-dev: uv.h for the addon when the running node ships no headers (the npm `node` package does).
# clang: the request decoders' libFuzzer harness (scripts/fuzz.sh, run by the `fuzz` test project).
packages=(libseccomp-dev libuv1-dev bubblewrap pkg-config cmake g++ python3 clang)

missing=()
for package in "${packages[@]}"; do
  # dpkg-query prints "install ok installed" only for a fully installed package.
  status=$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)
  [ "$status" = "install ok installed" ] || missing+=("$package")
done

[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "apt-deps: missing ${missing[*]}; install them with:" >&2
  echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
