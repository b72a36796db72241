#!/usr/bin/env bash
# Sets up a fresh Linux machine for zeroboot: Debian packages (as root), Node 24 and pnpm under .tools/
# when the system Node is older than 22, the workspace's packages, and the native + TypeScript build.
# Source it to keep Node 24 and pnpm on PATH afterwards.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/apt-deps.sh
source scripts/bootstrap.sh
pnpm install --frozen-lockfile --reporter=silent
pnpm build >/dev/null
