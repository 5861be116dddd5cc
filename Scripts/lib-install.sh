# Sourced by Scripts/*: installs the Debian packages a script needs when they are missing.
# Usage: ensure_packages pkg...

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

ensure_packages() {
  local missing=()
  for package in "$@"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "Installing: ${missing[*]}" >&2
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

# Like ensure_packages, for packages that ship a service: the tests start their own copy, so the
# install must not start (or enable) the system's.
ensure_services_packages() {
  local policy=/usr/sbin/policy-rc.d
  if [ -e "$policy" ]; then
    ensure_packages "$@"
    return
  fi
  printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null
  as_root chmod +x "$policy"
  local status=0
  ensure_packages "$@" || status=$?
  as_root rm -f "$policy"
  return "$status"
}

ensure_swift() {
  if ! command -v swift >/dev/null 2>&1 && [ -x /opt/swift/usr/bin/swift ]; then
    export PATH="/opt/swift/usr/bin:$PATH"
  fi
  if ! command -v swift >/dev/null 2>&1; then
    echo "error: Swift 6 is required (https://www.swift.org/install/linux/); 'swift' is not on PATH" >&2
    exit 1
  fi
}

# The packages every build and test needs.
BUILD_PACKAGES=(pkg-config fuse3 libfuse3-dev libcurl4-openssl-dev zlib1g-dev libarchive-dev)
