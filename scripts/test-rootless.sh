#!/usr/bin/env bash
# The test suite again, rootless: as an unprivileged user this script creates (zeroboot-ci), in a copy of
# the checkout that user owns. Run it as root after scripts/setup.sh (or scripts/test.sh); extra arguments
# go to vitest. With ZEROBOOT_ROOTLESS_REPORT=<path>, vitest's JSON report is copied there at the end.
#
# Why a copy: the checkout may sit below a directory only root can enter (CI's mktemp -d is 0700), vitest
# writes into the repository (its bundled config, its cache, the report), and every file a fork-server
# loads (zygote.py, libzeroboot.so, the addons) must be readable by the user. A checkout of the user's own
# is what a rootless user has, and root's checkout stays as it was.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

user=zeroboot-ci
if [ "$(id -u)" -ne 0 ]; then
  echo "test-rootless: run as root: it creates the unprivileged user $user and runs the tests as it" >&2
  exit 1
fi
id -u "$user" >/dev/null 2>&1 || useradd --create-home --shell /bin/bash "$user"
home=$(getent passwd "$user" | cut -d: -f6)
copy="$home/zeroboot"
rm -rf "$copy"
cp -a . "$copy"
chown -R "$user:$user" "$copy"

report="$copy/.ci/vitest-rootless.json"
rm -f "$report"
status=0
# A clean login environment: the user's own HOME, Node 24 and pnpm from the copy's .tools (setup.sh put
# them there when the system Node is older), and no PATH entry of root's (/root is not the user's to read).
runuser -u "$user" -- env -i HOME="$home" USER="$user" LANG=C.UTF-8 CI="${CI:-}" \
  PATH="$copy/.tools/node_modules/.bin:/usr/local/bin:/usr/bin:/bin" \
  bash -c 'cd "$1" && shift && exec pnpm test "$@"' bash "$copy" --reporter=default --reporter=json --outputFile.json="$report" "$@" || status=$?
if [ -n "${ZEROBOOT_ROOTLESS_REPORT:-}" ] && [ -f "$report" ]; then
  cp "$report" "$ZEROBOOT_ROOTLESS_REPORT"
fi
exit "$status"
