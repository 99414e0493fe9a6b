#!/usr/bin/env bash
# Package test of the agent SDK, as a supplier meets it: install component "sdk" of a build tree
# into a temporary prefix, check the layout and the exported symbols, build the shipped C and C++
# example agents out of tree with find_package(OtaAgentSdk) and with pkg-config, and run them.
#
# Usage: package_test.sh BUILD_DIR [CMAKE] [C_COMPILER] [CXX_COMPILER]
# Temporary files are removed on exit, also on failure (OTA_KEEP_TEMP=1 keeps them).
set -euo pipefail

build_dir=${1:?usage: package_test.sh BUILD_DIR [CMAKE] [C_COMPILER] [CXX_COMPILER]}
cmake=${2:-cmake}
cc=${3:-cc}
cxx=${4:-c++}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ota-sdk-package.XXXXXX")
cleanup() {
  if [[ "${OTA_KEEP_TEMP:-0}" == 1 ]]; then echo "kept $tmp" >&2; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
prefix=$tmp/prefix

step() { echo "== $*"; }
fail() { echo "FAIL: $*" >&2; exit 1; }

for component in sdk_runtime sdk; do
  step "install component $component from $build_dir"
  "$cmake" --install "$build_dir" --prefix "$prefix" --component $component > "$tmp/install.log" ||
    { cat "$tmp/install.log" >&2; fail "cmake --install (is ota_agent built?)"; }
done

step "layout"
lib=$(find "$prefix" -name 'libota-agent.so.*.*.*' -type f | head -n 1)
[[ -n "$lib" ]] || fail "libota-agent.so.X.Y.Z not installed"
libdir=$(dirname "$lib")
soname=$(objdump -p "$lib" | awk '$1 == "SONAME" { print $2 }')
[[ -n "$soname" && -L "$libdir/$soname" && -L "$libdir/libota-agent.so" ]] ||
  fail "SONAME '$soname' or its symlinks missing in $libdir"
[[ -f "$libdir/cmake/OtaAgentSdk/OtaAgentSdkConfig.cmake" &&
   -f "$libdir/cmake/OtaAgentSdk/OtaAgentSdkConfigVersion.cmake" &&
   -f "$libdir/cmake/OtaAgentSdk/OtaAgentSdkTargets.cmake" ]] || fail "CMake package files missing"
[[ -f "$libdir/pkgconfig/ota-agent.pc" ]] || fail "ota-agent.pc missing"
# The imported target may reference nothing internal (ota_core is linked into the library).
! grep -Eq 'ota_core|ota_proto|paho|protobuf|mbed' "$libdir"/cmake/OtaAgentSdk/*.cmake ||
  fail "the exported CMake targets reference internal dependencies"
# Exactly the public headers: nothing internal (Paho, protobuf, transport...) may leak out.
headers=$(cd "$prefix/include" && find . -type f | sort | tr '\n' ' ')
expected="./ota/agent.h ./ota/agent.hpp ./ota/core/io.hpp ./ota/core/status.hpp ./ota/file_device.hpp "
[[ "$headers" == "$expected" ]] || fail "installed headers are '$headers', expected '$expected'"
# Only the SDK: no programs of the other components.
[[ ! -e "$prefix/bin" ]] || fail "components sdk_runtime and sdk installed programs: $(ls "$prefix/bin")"
examples=$prefix/share/doc/ota-agent-sdk/examples
[[ -f "$examples/c/CMakeLists.txt" && -f "$examples/cpp/CMakeLists.txt" ]] || fail "examples not installed"

step "exported symbols"
# Only the C functions ota_*, the ota::agent C++ API, and what the std-only core headers need.
nm -DC --defined-only "$lib" | cut -d' ' -f3- | sed 's/@@.*//' > "$tmp/symbols"
echo "$(wc -l < "$tmp/symbols") dynamic symbols"
grep -Ev '^(ota_[a-z_]+|OTA_AGENT_[0-9]+|ota::agent::.*|ota::code_name\(.*|ota::Status::.*|(typeinfo|typeinfo name|vtable) for ota::(agent::)?[A-Za-z]+)$' \
  "$tmp/symbols" > "$tmp/unexpected" || true
[[ ! -s "$tmp/unexpected" ]] || { head -n 20 "$tmp/unexpected" >&2; fail "unexpected exported symbols"; }
! grep -Eq '^ota::agent::Agent::Impl' "$tmp/symbols" || fail "the Agent's implementation is exported"

step "each public header compiles on its own"
for h in ota/agent.h; do
  echo "#include <$h>" | "$cc" -std=c99 -Wall -Wextra -pedantic -Werror -fsyntax-only -I"$prefix/include" -x c - ||
    fail "$h as C99"
done
for h in ota/agent.h ota/agent.hpp ota/file_device.hpp ota/core/status.hpp ota/core/io.hpp; do
  echo "#include <$h>" | "$cxx" -std=c++17 -Wall -Wextra -pedantic -Werror -fsyntax-only -I"$prefix/include" -x c++ - ||
    fail "$h as C++17"
done

step "examples with find_package(OtaAgentSdk)"
for lang in c cpp; do
  if [[ $lang == c ]]; then compiler=(-DCMAKE_C_COMPILER="$cc" -DCMAKE_C_FLAGS=-Werror)
  else compiler=(-DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_CXX_FLAGS=-Werror); fi
  "$cmake" -S "$examples/$lang" -B "$tmp/build-$lang" -DCMAKE_PREFIX_PATH="$prefix" "${compiler[@]}" \
    -DCMAKE_FIND_PACKAGE_NO_PACKAGE_REGISTRY=ON > "$tmp/configure-$lang.log" 2>&1 ||
    { cat "$tmp/configure-$lang.log" >&2; fail "configure $lang example"; }
  found=$(grep '^OtaAgentSdk_DIR:' "$tmp/build-$lang/CMakeCache.txt" | cut -d= -f2-)
  [[ "$found" == "$prefix"/* ]] || fail "$lang example found OtaAgentSdk in '$found', not in $prefix"
  "$cmake" --build "$tmp/build-$lang" -j2 > "$tmp/build-$lang.log" ||
    { cat "$tmp/build-$lang.log" >&2; fail "build $lang example"; }
done
# Run from the build tree (CMake's build RPATH points at the prefix); make sure that is the
# library they load, not one installed elsewhere on this machine.
for exe in "$tmp/build-c/example-agent-c" "$tmp/build-cpp/example-agent-cpp"; do
  # Not `ldd | grep -q`: with pipefail, grep quitting early can fail the pipeline through SIGPIPE.
  deps=$(ldd "$exe")
  [[ "$deps" == *"$soname => $libdir/"* ]] || { echo "$deps" >&2; fail "$exe does not load $libdir"; }
  "$exe" --help > "$tmp/help.txt" || fail "$exe --help"
  grep -q "usage:" "$tmp/help.txt" || fail "$exe --help printed no usage"
done

step "a package asking for another major version is refused"
mkdir -p "$tmp/major"
printf 'cmake_minimum_required(VERSION 3.16)\nproject(major LANGUAGES C)\nfind_package(OtaAgentSdk 99 REQUIRED)\n' \
  > "$tmp/major/CMakeLists.txt"
if "$cmake" -S "$tmp/major" -B "$tmp/major/build" -DCMAKE_PREFIX_PATH="$prefix" > "$tmp/major.log" 2>&1; then
  fail "find_package(OtaAgentSdk 99) accepted this SDK (SameMajorVersion expected)"
fi

step "pkg-config"
command -v pkg-config > /dev/null || fail "pkg-config not found"
export PKG_CONFIG_PATH="$libdir/pkgconfig"
flags=$(pkg-config --cflags --libs ota-agent) || fail "pkg-config --cflags --libs ota-agent"
echo "ota-agent $(pkg-config --modversion ota-agent): $flags"
[[ "$(realpath "$(pkg-config --variable=libdir ota-agent)")" == "$(realpath "$libdir")" ]] ||
  fail "pkg-config libdir does not point into $prefix"
# shellcheck disable=SC2046  # word splitting of the flags is intended
"$cc" -std=c99 -Wall -Wextra -Werror $(pkg-config --cflags ota-agent) "$examples/c/example_agent.c" \
  -o "$tmp/pc-example-c" $(pkg-config --libs ota-agent) || fail "C example with pkg-config"
# shellcheck disable=SC2046
"$cxx" -std=c++17 -Wall -Wextra -Werror $(pkg-config --cflags ota-agent) "$examples/cpp/example_agent.cpp" \
  -o "$tmp/pc-example-cpp" $(pkg-config --libs ota-agent) || fail "C++ example with pkg-config"
for exe in "$tmp/pc-example-c" "$tmp/pc-example-cpp"; do
  LD_LIBRARY_PATH="$libdir" "$exe" --help > /dev/null || fail "$exe --help"
done

echo "PASS: SDK package installs, exports only its API, and both examples build and run against it"
