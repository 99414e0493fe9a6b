#!/usr/bin/env bash
# programs_test.sh VERSION MAN_DIR PROGRAM...
# Checks each program's command-line contract: --help and --version exit 0, the first line of
# --version is "NAME VERSION", an unknown option fails with a non-zero status, and MAN_DIR (when
# not empty) holds NAME.1 naming the program. Prints every failure, then exits 1 if there was one.
set -u
version="$1" man_dir="$2"
shift 2
(($# > 0)) || { echo "no program to check" >&2; exit 1; }
failures=0
fail() { echo "FAIL $*" >&2; failures=$((failures + 1)); }
for program in "$@"; do
  name="$(basename "$program")"
  [[ -x "$program" ]] || { fail "$name: $program is not an executable"; continue; }
  help="$("$program" --help 2>&1)" || fail "$name --help: exit status $?"
  grep -q -- "--version" <<<"$help" || fail "$name --help does not list --version"
  out="$("$program" --version 2>&1)" || fail "$name --version: exit status $?"
  first="$(head -n 1 <<<"$out")"
  [[ "$first" == "$name $version" ]] || fail "$name --version printed '$first', expected '$name $version'"
  if "$program" --no-such-option-xyz >/dev/null 2>&1; then fail "$name accepted an unknown option"; fi
  if [[ -n "$man_dir" ]]; then
    page="$man_dir/$name.1"
    if [[ ! -s "$page" ]]; then
      fail "$name: no man page at $page"
    elif ! grep -q "^\.TH \"\?${name^^}" "$page"; then
      fail "$name: $page is not the page of $name ($(grep -m1 '^\.TH' "$page"))"
    fi
  fi
  echo "ok $name"
done
((failures == 0)) || { echo "$failures failure(s)" >&2; exit 1; }
