#!/usr/bin/env bash
# The README's test command: set up, then `pnpm test` (extra arguments go to vitest).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh
pnpm test "$@"
