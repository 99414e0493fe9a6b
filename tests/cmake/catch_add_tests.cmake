# Run after a Catch2 test executable is linked (ota_discover_tests in tests/CMakeLists.txt): lists
# its test cases and their tags, and writes CTEST_FILE with one ctest test per case, labelled with
# every tag of the case ([unit][core] -> LABELS unit;core). Fails the build, naming the case, when a
# case carries none of the kind tags [unit] [integration], or a kind its CMakeLists did not declare
# (KINDS): what `ctest -L unit` selects, and what the sanitizer build compiles for it, follow from
# the declared kinds.
#
# Inputs (-D): TARGET, EXECUTABLE, WORKING_DIR, KINDS (comma-separated), TIMEOUT (seconds or
# empty), CTEST_FILE, DECLARED_IN (the CMakeLists, for messages).
cmake_minimum_required(VERSION 3.18)

set(kind_tags unit integration)
string(REPLACE "," ";" declared "${KINDS}")

# Names of the cases a test spec selects, one list element per name. Catch2 v2 exits with the
# number of cases it listed, so only a negative code (a crash) is an error.
function(list_cases spec out)
  execute_process(COMMAND "${EXECUTABLE}" ${spec} --list-test-names-only
                  OUTPUT_VARIABLE output ERROR_VARIABLE error RESULT_VARIABLE rc
                  WORKING_DIRECTORY "${WORKING_DIR}")
  if(NOT rc MATCHES "^[0-9]+$")
    message(FATAL_ERROR "${TARGET}: listing its test cases failed (${rc}):\n${output}${error}")
  endif()
  # Brackets would group list elements: keep them out of the list, restore them per name.
  string(REPLACE "[" "<ota-lb>" output "${output}")
  string(REPLACE "]" "<ota-rb>" output "${output}")
  string(REPLACE ";" "<ota-sc>" output "${output}")
  string(REPLACE "\n" ";" lines "${output}")
  set(names "")
  foreach(line IN LISTS lines)
    if(NOT line STREQUAL "")
      list(APPEND names "${line}")
    endif()
  endforeach()
  set(${out} "${names}" PARENT_SCOPE)
endfunction()

function(unescape name out)
  string(REPLACE "<ota-lb>" "[" name "${name}")
  string(REPLACE "<ota-rb>" "]" name "${name}")
  string(REPLACE "<ota-sc>" ";" name "${name}")
  set(${out} "${name}" PARENT_SCOPE)
endfunction()

list_cases("" cases)
list(LENGTH cases count)
if(count EQUAL 0)
  message(FATAL_ERROR "${TARGET} (${DECLARED_IN}) holds no test case")
endif()

# Every tag: `--list-tags` prints one line per tag ("  12  [core]"), then a total.
execute_process(COMMAND "${EXECUTABLE}" --list-tags OUTPUT_VARIABLE tag_output RESULT_VARIABLE rc
                WORKING_DIRECTORY "${WORKING_DIR}")
if(NOT rc MATCHES "^[0-9]+$")
  message(FATAL_ERROR "${TARGET}: listing its tags failed (${rc}):\n${tag_output}")
endif()
string(REGEX MATCHALL "\\[[^]\n]+\\]" tag_matches "${tag_output}")
set(tags "")
foreach(m IN LISTS tag_matches)
  string(REGEX REPLACE "^\\[(.*)\\]$" "\\1" tag "${m}")
  string(TOLOWER "${tag}" tag)
  if(NOT tag STREQUAL "." AND NOT tag MATCHES "^!")
    list(APPEND tags "${tag}")
  endif()
endforeach()
list(REMOVE_DUPLICATES tags)

# labels_<index of the case> = its tags.
foreach(tag IN LISTS tags)
  list_cases("[${tag}]" tagged)
  foreach(name IN LISTS tagged)
    list(FIND cases "${name}" i)
    if(i GREATER -1)  # not a hidden case ([.]), which ctest does not run
      list(APPEND labels_${i} "${tag}")
    endif()
  endforeach()
endforeach()

set(script "")
set(problems "")
math(EXPR last "${count} - 1")
foreach(i RANGE ${last})
  list(GET cases ${i} escaped)
  unescape("${escaped}" name)
  set(kinds "")
  foreach(kind IN LISTS kind_tags)
    if(kind IN_LIST labels_${i})
      list(APPEND kinds ${kind})
      if(NOT kind IN_LIST declared)
        string(APPEND problems "  '${name}' is tagged [${kind}], which ${TARGET} does not declare (KINDS ${declared})\n")
      endif()
    endif()
  endforeach()
  if(kinds STREQUAL "")
    string(APPEND problems "  '${name}' has none of the tags [unit] [integration]\n")
  endif()
  # The test spec Catch reads: a name, with the characters it would parse escaped.
  set(spec "${name}")
  foreach(char , [ ])
    string(REPLACE "${char}" "\\${char}" spec "${spec}")
  endforeach()
  list(JOIN labels_${i} ";" label_list)
  string(APPEND script "add_test([==[${name}]==] [==[${EXECUTABLE}]==] [==[${spec}]==])\n"
                       "set_tests_properties([==[${name}]==] PROPERTIES WORKING_DIRECTORY [==[${WORKING_DIR}]==]"
                       " LABELS [==[${label_list}]==]")
  if(NOT TIMEOUT STREQUAL "")
    string(APPEND script " TIMEOUT ${TIMEOUT}")
  endif()
  string(APPEND script ")\n")
endforeach()

if(NOT problems STREQUAL "")
  file(REMOVE "${CTEST_FILE}")
  message(FATAL_ERROR "${TARGET} (${DECLARED_IN}): every test case needs a kind tag its executable declares:\n"
                      "${problems}")
endif()
file(WRITE "${CTEST_FILE}" "${script}")
