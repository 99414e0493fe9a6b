#!/usr/bin/env bash
# The documents keep up with the tree:
#  - every message and enum of the wire and trust protocol (proto/ota/v1/ota.proto, cloud.proto, control.proto,
#    trust.proto) is named, in code spans, in docs/PROTOCOL.md or docs/SECURITY.md, and every one
#    of the on-disk and package formats (state.proto, package.proto) somewhere in docs/;
#  - every repository path a document names in a code span (`core/trust/src/reports.cpp`) exists.
#
# Usage: docs_test.sh SOURCE_DIR
set -euo pipefail

src=${1:?usage: docs_test.sh SOURCE_DIR}
cd "$src"
failed=0
fail() { echo "FAIL: $*" >&2; failed=1; }

# Identifiers inside `code spans` of the given documents, one per line.
code_words() { grep -ohE '`[^`]+`' "$@" | tr -c 'A-Za-z0-9_\n' '\n' | grep -v '^$' | sort -u; }
# Message and enum names of a .proto file, nested ones included.
proto_names() { sed -nE 's/^[[:space:]]*(message|enum)[[:space:]]+([A-Za-z0-9_]+).*/\2/p' "$1"; }

declare -A protocol_words all_words
while read -r w; do protocol_words[$w]=1; done < <(code_words docs/PROTOCOL.md docs/SECURITY.md)
while read -r w; do all_words[$w]=1; done < <(code_words docs/*.md)
checked=0
for proto in ota cloud trust control state package; do
  file=proto/ota/v1/$proto.proto
  [[ -f $file ]] || { fail "$file does not exist"; continue; }
  for name in $(proto_names "$file"); do
    checked=$((checked + 1))
    case $proto in
      state | package) [[ -n ${all_words[$name]:-} ]] || fail "$file: $name is not described in docs/" ;;
      *) [[ -n ${protocol_words[$name]:-} ]] ||
           fail "$file: $name is not described in docs/PROTOCOL.md or docs/SECURITY.md" ;;
    esac
  done
done
((checked > 50)) || fail "only $checked proto names found: is the parser still right?"

# Paths: a code span that starts with a top-level directory of the repository. Spans with
# placeholders ({ecu}, <target>, *, ...) name patterns, not files.
declare -A tops
while read -r d; do tops[$d]=1; done < <(find . -mindepth 1 -maxdepth 1 -type d ! -name '.*' ! -name 'build*' -printf '%f\n')
paths=0
while IFS= read -r span; do
  path=${span%%:*}                 # file.cpp:123, broker-config/render:line
  path=${path%%#*}
  [[ $path == */* ]] || continue
  [[ $path =~ [{}\<\>*\ ] ]] && continue
  top=${path%%/*}
  [[ -n $top && -n ${tops[$top]:-} ]] || continue
  paths=$((paths + 1))
  [[ -e $path ]] || fail "a document names $path, which does not exist"
done < <(grep -ohE '`[^`]+`' docs/*.md README.md | tr -d '`' | sort -u)
((paths > 20)) || fail "only $paths paths found in the documents: is the parser still right?"

((failed == 0)) || exit 1
echo "OK: $checked proto names described, $paths paths exist"
