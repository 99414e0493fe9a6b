#!/usr/bin/env bash
# What libota-agent.so carries: the vehicle's code only. The delta encoder (and libdivsufsort under
# it), the metadata builders, metadata signing and the simulated platform's signing are platform
# code (platform/); an ECU's agent must link none of it. Checked on the full symbol table, local
# symbols included (the version script hides them from the dynamic table, not from the file), and
# on the library's dependencies, direct (readelf -d) and resolved (ldd).
#
# Usage: so_contents_test.sh LIBOTA_AGENT_SO
# Prints the dependencies and the stripped size of the library (measured on a stripped copy).
set -euo pipefail

lib=${1:?usage: so_contents_test.sh LIBOTA_AGENT_SO}
fail() { echo "FAIL: $*" >&2; exit 1; }
[[ -f "$lib" ]] || fail "$lib does not exist (is ota_agent built?)"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ota-so-contents.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

readelf -d "$lib" | awk '/\(NEEDED\)/ { gsub(/[][]/, "", $5); print $5 }' > "$tmp/needed"
echo "NEEDED: $(tr '\n' ' ' < "$tmp/needed")"
! grep -qi divsufsort "$tmp/needed" || fail "libota-agent.so needs libdivsufsort (the delta encoder)"
ldd "$lib" > "$tmp/ldd" || fail "ldd $lib"
! grep -qi divsufsort "$tmp/ldd" || fail "libota-agent.so loads libdivsufsort: $(grep -i divsufsort "$tmp/ldd")"

nm -C "$lib" > "$tmp/symbols" 2> "$tmp/nm.err" || true
# A stripped library would pass every absence check below without proving anything.
[[ -s "$tmp/symbols" ]] || fail "$lib has no symbol table to check ($(cat "$tmp/nm.err"))"
for present in 'ota::delta::apply_delta\(' 'ota::trust::AgentVerifier::verify_target\(' \
               'ota::trust::sign_result\[abi:cxx11\]\(' 'ota::make_transport\('; do
  grep -Eq " [tTwW] $present" "$tmp/symbols" ||
    fail "the check cannot see the library's own code: no symbol matching '$present'"
done

forbidden=(
  'ota::delta::make_delta\('                      # the delta encoder
  'ota::delta::detail::build_suffix_array'        # its suffix arrays
  ' divsufsort'                                   # libdivsufsort linked in statically
  'ota::trust::make_(root|image|director)_body\(' # metadata builders
  'ota::trust::sign(\[abi:cxx11\])?\('            # metadata signing (threshold of role keys)
  'ota::trust::add_signature'                     # co-signing of metadata
  'ota::sim::'                                    # the simulated platform's campaign signing
  'ota::pack::'                                   # update packages
)
for pattern in "${forbidden[@]}"; do
  if grep -Eq "$pattern" "$tmp/symbols"; then
    grep -E "$pattern" "$tmp/symbols" | head -n 5 >&2
    fail "libota-agent.so holds platform code (symbols matching '$pattern')"
  fi
done
! nm -DC --defined-only "$lib" | grep -Eq 'make_delta|suffix_array|make_(root|image|director)_body' ||
  fail "libota-agent.so exports platform code"

cp "$lib" "$tmp/stripped.so"
strip "$tmp/stripped.so"
echo "size: $(stat -c %s "$lib") bytes, $(stat -c %s "$tmp/stripped.so") bytes stripped"
echo "OK: libota-agent.so carries no delta encoder, divsufsort, metadata building or signing"
