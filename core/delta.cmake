# Delta codec (issue 6): encoder (suffix array + bsdiff-style matching + zstd streams), streaming
# decoder, executable branch transforms. libdivsufsort's 32-bit variant halves the encoder's
# suffix array for images under 2 GiB; it ships in the same Debian package as the 64-bit one.
target_sources(ota_core PRIVATE
  ${CMAKE_CURRENT_SOURCE_DIR}/src/delta/transform.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/src/delta/suffix_array32.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/src/delta/suffix_array64.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/src/delta/encoder.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/src/delta/decoder.cpp
)
# The encoder's matching (unchanged stretches, then suffix-array matching of the rest) and its
# zstd block writer.
target_sources(ota_core PRIVATE
  ${CMAKE_CURRENT_SOURCE_DIR}/src/delta/matcher.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/src/delta/block_writer.cpp
)
# The decoder's reading of the compressed streams.
target_sources(ota_core PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/src/delta/stream_reader.cpp)
find_library(OTA_DIVSUFSORT32_LIBRARY divsufsort REQUIRED)
target_link_libraries(ota_core PRIVATE ${OTA_DIVSUFSORT32_LIBRARY})
