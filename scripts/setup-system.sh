#!/usr/bin/env bash
# Installs the Debian packages the tests read: Fashion-MNIST's IDX files, Chromium (for the
# report page's screenshot test) and PostgreSQL (a throwaway server for the test of a sweep
# shared through a database). Skips what is already there, so a second run costs nothing.
set -euo pipefail
wanted=()
[ -d /usr/share/datasets/fashion-mnist ] || wanted+=(dataset-fashion-mnist)
command -v chromium >/dev/null 2>&1 || wanted+=(chromium)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || wanted+=(postgresql)
[ ${#wanted[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ]; then sudo=""; elif command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
    echo "setup-system: need root to install ${wanted[*]}; install them, then rerun" >&2; exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q >/dev/null || true
$sudo apt-get install -y -q --no-install-recommends "${wanted[@]}" >/dev/null
