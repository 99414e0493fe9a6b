target_sources(ota_core PRIVATE
  ${CMAKE_CURRENT_SOURCE_DIR}/src/log.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/src/crc32c.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/src/topics.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/src/codec.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/src/mqtt_transport.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/src/mqtt_wire.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/src/native_transport.cpp)
target_link_libraries(ota_core PRIVATE PahoMqttCpp::paho-mqttpp3)
target_sources(ota_core PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/src/loopback_transport.cpp)
