# ota_cloud_link: the client's link to the OTA platform (CloudLink, localize, the report outbox). Included from
# client/CMakeLists.txt (and, until then, from tests/cloud); paths are relative to this file so
# that either works.
if(NOT TARGET ota_cloud_link)
  add_library(ota_cloud_link STATIC
    ${CMAKE_CURRENT_LIST_DIR}/src/cloud_link.cpp
    ${CMAKE_CURRENT_LIST_DIR}/src/cloud_download.cpp
    ${CMAKE_CURRENT_LIST_DIR}/src/cloud_reports.cpp
    ${CMAKE_CURRENT_LIST_DIR}/src/report_outbox.cpp)
  target_include_directories(ota_cloud_link PUBLIC ${CMAKE_CURRENT_LIST_DIR}/src)
  target_link_libraries(ota_cloud_link PUBLIC ota_core ota_client_lib)
endif()
