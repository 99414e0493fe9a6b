# shellcheck shell=bash
# Shared by scripts/test and scripts/demo (sourced, not executed): the Debian packages the
# project needs, installing the missing ones, and configuring the build directory.

# Every package the build, the tests and the demo need (Debian 12). One place only.
OTA_DEBIAN_PACKAGES=(
  build-essential cmake pkg-config
  libpaho-mqttpp-dev libpaho-mqtt-dev
  mosquitto mosquitto-clients
  libmbedtls-dev libssl-dev openssl
  libprotobuf-dev protobuf-compiler
  libzstd-dev zstd libdivsufsort-dev
  catch2 libcli11-dev libtomlplusplus-dev
  iproute2 time help2man
  systemd man-db
)

# What the checks of scripts/test add (CI runs them all): the format check (scripts/check-format)
# and the clang builds with sanitizers and libFuzzer (scripts/fuzz).
OTA_CHECK_PACKAGES=(
  clang-format-14 clang-14 libclang-rt-14-dev
)

ota_log() { echo "[$(basename "$0")] $*" >&2; }

# Installs the packages of OTA_DEBIAN_PACKAGES and those named as arguments that are not installed
# yet. No apt-get update (and nothing at all) when everything is present, so a second run is quick
# and works offline.
ota_install_deps() {
  local missing=() pkg status
  for pkg in "${OTA_DEBIAN_PACKAGES[@]}" "$@"; do
    status="$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)"
    [[ "$status" == "install ok installed" ]] || missing+=("$pkg")
  done
  ((${#missing[@]} == 0)) && return 0
  ota_log "missing Debian packages: ${missing[*]}"
  local sudo=()
  if [[ "$(id -u)" != 0 ]]; then
    if command -v sudo >/dev/null 2>&1; then
      sudo=(sudo)
    else
      ota_log "error: run as root (or install: apt-get install ${missing[*]})"
      return 1
    fi
  fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -q
  "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
}

# Configures BUILD_DIR once (Werror, RelWithDebInfo); later runs only rebuild incrementally. A
# build directory configured without -DOTA_WERROR=ON is reconfigured with it.
ota_configure() {
  local root="$1" build="$2"
  if [[ -f "$build/CMakeCache.txt" ]] && grep -q '^OTA_WERROR:BOOL=ON$' "$build/CMakeCache.txt"; then
    return 0
  fi
  ota_log "configuring $build"
  cmake -S "$root" -B "$build" -DOTA_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo
}
