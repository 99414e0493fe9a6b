#!/usr/bin/env bash
# packages_test.sh BUILD_DIR VERSION
# Builds the Debian packages from BUILD_DIR with CPack into a temporary directory and checks what
# each promises: its name and version, the files it holds (and not those of another package), the
# dependencies dpkg-shlibdeps computed, the conffiles; unpacks them all into one root, runs the
# installed client on the installed default configuration (--check-config), and verifies every
# installed unit with systemd-analyze.
set -euo pipefail
build="$1" version="$2"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ota-packages.XXXXXX")
cleanup() { if [[ "${OTA_KEEP_TEMP:-0}" == 1 ]]; then echo "kept $tmp" >&2; else rm -rf "$tmp"; fi; }
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
step() { echo "== $*"; }

step "cpack"
cpack --config "$build/CPackConfig.cmake" -B "$tmp/out" > "$tmp/cpack.log" 2>&1 ||
  { tail -n 30 "$tmp/cpack.log" >&2; fail "cpack failed"; }
arch=$(dpkg --print-architecture)
declare -A deb
for p in ota-client ota-broker ota-tools libota-agent0 libota-agent-dev; do
  a=$arch
  [[ $p == ota-broker ]] && a=all
  f="$tmp/out/${p}_${version}_${a}.deb"
  [[ -f "$f" ]] || fail "no package $p: expected $(basename "$f"), got: $(cd "$tmp/out" && ls ./*.deb | tr '\n' ' ')"
  deb[$p]=$f
  [[ "$(dpkg-deb -f "$f" Package)" == "$p" && "$(dpkg-deb -f "$f" Version)" == "$version" ]] ||
    fail "$p: control says $(dpkg-deb -f "$f" Package) $(dpkg-deb -f "$f" Version)"
done
count=$(find "$tmp/out" -maxdepth 1 -name '*.deb' | wc -l)
((count == 5)) || fail "$count packages built, expected 5 (the simulators are not packaged)"

# has PACKAGE PATH...: every path is in the package.  hasnt PACKAGE REGEX: no path matches.
contents() { dpkg-deb -c "${deb[$1]}" | awk '{ print $6 }' | sed 's|^\./|/|'; }
has() {
  local p=$1 path
  shift
  for path in "$@"; do contents "$p" | grep -qx -- "$path" || fail "$p lacks $path"; done
}
hasnt() { if contents "$1" | grep -Eq -- "$2"; then fail "$1 holds $(contents "$1" | grep -E -- "$2" | head -n 1)"; fi; }
depends() { dpkg-deb -f "${deb[$1]}" Depends; }

step "contents"
has ota-client /usr/bin/ota-client /usr/share/man/man1/ota-client.1 /etc/ota/client.toml \
  /usr/lib/systemd/system/ota-client.service
hasnt ota-client 'ota-sim|ota-pack|libota-agent'
has ota-broker /usr/sbin/ota-provision-broker /usr/lib/systemd/system/ota-broker.service \
  /usr/share/ota/broker-config/render /usr/share/ota/broker-config/mosquitto.conf.in
has ota-tools /usr/bin/ota-pack /usr/bin/ota-keygen /usr/share/man/man1/ota-pack.1 /usr/share/man/man1/ota-keygen.1
hasnt ota-tools 'ota-client|ota-sim|ota-agent-sim|ota-cloud-sim'
has libota-agent0 "/usr/lib/libota-agent.so.$version" /usr/lib/libota-agent.so.0
hasnt libota-agent0 'include/|libota-agent\.so$'
has libota-agent-dev /usr/include/ota/agent.h /usr/include/ota/agent.hpp /usr/lib/libota-agent.so \
  /usr/lib/pkgconfig/ota-agent.pc /usr/lib/cmake/OtaAgentSdk/OtaAgentSdkConfig.cmake
hasnt libota-agent-dev "libota-agent\.so\.$version"

step "dependencies"
# Computed from the programs by dpkg-shlibdeps, not written by hand.
for p in ota-client ota-tools libota-agent0; do
  grep -q 'libc6' <<<"$(depends $p)" || fail "$p: Depends '$(depends $p)' lacks libc6 (shlibdeps did not run)"
done
grep -q 'libssl3' <<<"$(depends ota-client)" || fail "ota-client: Depends '$(depends ota-client)' lacks libssl3"
grep -q 'mosquitto' <<<"$(depends ota-broker)" || fail "ota-broker does not depend on mosquitto"
grep -q "libota-agent0 (= $version)" <<<"$(depends libota-agent-dev)" ||
  fail "libota-agent-dev: Depends '$(depends libota-agent-dev)' lacks libota-agent0 (= $version)"

step "conffiles and maintainer scripts"
mkdir -p "$tmp/control"
dpkg-deb -e "${deb[ota-client]}" "$tmp/control"
grep -qx /etc/ota/client.toml "$tmp/control/conffiles" || fail "/etc/ota/client.toml is not a conffile"
grep -q 'adduser --system' "$tmp/control/postinst" || fail "ota-client's postinst does not create the system user"

step "unpack into one root"
rootfs=$tmp/root
for p in "${!deb[@]}"; do dpkg-deb -x "${deb[$p]}" "$rootfs"; done
"$rootfs/usr/bin/ota-client" --version | head -n 1 | grep -qx "ota-client $version" || fail "installed ota-client --version"
"$rootfs/usr/bin/ota-client" --check-config --config "$rootfs/etc/ota/client.toml" > "$tmp/check.log" 2>&1 ||
  { cat "$tmp/check.log" >&2; fail "the installed default configuration is refused by the installed client"; }
"$rootfs/usr/sbin/ota-provision-broker" --help | grep -q -- '--agents' || fail "ota-provision-broker --help"

step "systemd-analyze verify"
units=("$rootfs"/usr/lib/systemd/system/*.service)
((${#units[@]} >= 2)) || fail "units installed: ${units[*]}"
mkdir -p "$tmp/units"
for unit in "${units[@]}"; do
  # Verified against this machine's systemd (its targets, /bin/kill, the mosquitto the broker
  # package depends on) with our own programs taken from the unpacked root.
  name=$(basename "$unit")
  sed -e "s|=/usr/bin/ota-|=$rootfs/usr/bin/ota-|g" -e "s|=/usr/sbin/ota-|=$rootfs/usr/sbin/ota-|g" "$unit" > "$tmp/units/$name"
  # MANPATH: Documentation=man:NAME(1) is checked against the installed page (the trailing colon
  # keeps the system pages, mosquitto(8) among them).
  if ! MANPATH="$rootfs/usr/share/man:" SYSTEMD_LOG_LEVEL=warning systemd-analyze verify "$tmp/units/$name" > "$tmp/verify.log" 2>&1; then
    cat "$tmp/verify.log" >&2
    fail "systemd-analyze verify $name"
  fi
  # verify exits 0 on some problems it only prints: none may be printed about our unit.
  if grep -q "$name" "$tmp/verify.log"; then cat "$tmp/verify.log" >&2; fail "$name has warnings"; fi
  echo "ok $name"
done
echo "all packages hold what they promise"
