#!/usr/bin/env bash
# Installs the tools the acceptance scripts drive, when missing (Debian 12).
set -euo pipefail
cd "$(dirname "$0")/../.."
source Scripts/lib-install.sh
ensure_packages rsync vim git tar sqlite3 make gcc libc6-dev coreutils diffutils findutils sed
