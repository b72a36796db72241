#!/usr/bin/env bash
# The README's first command: set up, then run the demo.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh
pnpm demo
