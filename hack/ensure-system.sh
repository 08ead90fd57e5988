#!/usr/bin/env bash
# Installs the system packages the project runs, when missing: Debian packages as root,
# otherwise a clear message. Go is needed for the control plane and Pulumi builds; chromium (the
# Debian package, /usr/bin/chromium) for the dashboard's browser tests.
set -euo pipefail
need=()
command -v go >/dev/null || [ -x /usr/local/go/bin/go ] || need+=(golang-go)
command -v gcc >/dev/null || need+=(gcc)
command -v openssl >/dev/null || need+=(openssl)
for pkg in "$@"; do
  case "$pkg" in
    prometheus) command -v prometheus >/dev/null || need+=(prometheus) ;;
    redis-server) command -v redis-server >/dev/null || need+=(redis-server) ;;
    chromium) [ -x /usr/bin/chromium ] || need+=(chromium) ;;
    *) dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg") ;;
  esac
done
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "[airollout] installing system packages: ${need[*]}" >&2
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
else
  echo "[airollout] missing system packages: ${need[*]} (install them, e.g. sudo apt-get install ${need[*]})" >&2
  exit 1
fi
