# Trust layer (keys, signed metadata, verifiers): sources of ota_core. Included by core/CMakeLists.txt.
# The generated trust.pb.h comes through ota_proto (PUBLIC); mbedTLS stays private to ota_core.
target_sources(ota_core PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/src/trust/keys.cpp
  ${CMAKE_CURRENT_LIST_DIR}/src/trust/metadata.cpp
  ${CMAKE_CURRENT_LIST_DIR}/src/trust/store.cpp
  ${CMAKE_CURRENT_LIST_DIR}/src/trust/agent.cpp
  ${CMAKE_CURRENT_LIST_DIR}/src/trust/build.cpp
  ${CMAKE_CURRENT_LIST_DIR}/src/trust/wire.cpp
)
