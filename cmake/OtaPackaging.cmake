# Debian packages, one per install component (scripts/package builds them into build/packages/):
#
#   ota-client        component client       ota-client, its unit, /etc/ota/client.toml (conffile)
#   ota-broker        component broker       the vehicle broker's unit, configuration templates,
#                                            ota-provision-broker
#   ota-tools         component tools        ota-pack, ota-keygen
#   libota-agent0     component sdk_runtime  libota-agent.so.0 (what an agent program needs to run)
#   libota-agent-dev  component sdk          headers, CMake package, pkg-config file, examples
#
# The simulators (component sim) are not packaged. Runtime dependencies are computed by
# dpkg-shlibdeps from the programs; what they run (mosquitto) is declared. Conffiles live under
# /etc/ota/, state under /var/lib/ota/ (systemd's StateDirectory=), the services run as the system
# user ota, created by ota-client's postinst.
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME ota)
set(CPACK_PACKAGE_VENDOR "The OTA project")
set(CPACK_PACKAGE_CONTACT "OTA maintainers <ota@localhost>")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "Over-the-air software updates for vehicles")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_ALL client broker tools sdk_runtime sdk)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_SECTION misc)
set(CPACK_DEBIAN_ENABLE_COMPONENT_DEPENDS ON)
set(CPACK_DEBIAN_COMPRESSION_TYPE xz)
# Programs and the library ship stripped (the build keeps its debug information).
set(CPACK_STRIP_FILES TRUE)

set(CPACK_DEBIAN_CLIENT_PACKAGE_NAME ota-client)
set(CPACK_COMPONENT_CLIENT_DESCRIPTION
    "OTA update client for the vehicle's gateway\n The service that receives update campaigns, verifies them, asks for consent and\n carries them out across the ECUs' agents through the vehicle broker.")
set(CPACK_DEBIAN_CLIENT_PACKAGE_RECOMMENDS "ota-broker")
set(CPACK_DEBIAN_CLIENT_PACKAGE_DEPENDS "adduser")
set(CPACK_DEBIAN_CLIENT_PACKAGE_CONTROL_EXTRA
    ${PROJECT_SOURCE_DIR}/client/deploy/debian/conffiles ${PROJECT_SOURCE_DIR}/client/deploy/debian/postinst)

set(CPACK_DEBIAN_BROKER_PACKAGE_NAME ota-broker)
set(CPACK_COMPONENT_BROKER_DESCRIPTION
    "OTA vehicle broker configuration\n The Mosquitto configuration, ACL templates and unit of the broker the OTA client and\n the ECU agents talk through, and ota-provision-broker to provision it.")
set(CPACK_DEBIAN_BROKER_PACKAGE_DEPENDS "mosquitto (>= 2.0), mosquitto-clients, openssl")
set(CPACK_DEBIAN_BROKER_PACKAGE_ARCHITECTURE all)

set(CPACK_DEBIAN_TOOLS_PACKAGE_NAME ota-tools)
set(CPACK_COMPONENT_TOOLS_DESCRIPTION
    "OTA tools: packages, deltas and keys\n ota-pack makes and applies deltas and signed update packages; ota-keygen makes the\n signing roles' and the ECUs' key pairs.")

set(CPACK_DEBIAN_SDK_RUNTIME_PACKAGE_NAME libota-agent0)
set(CPACK_COMPONENT_SDK_RUNTIME_DESCRIPTION
    "OTA agent SDK, shared library\n libota-agent.so.0: the ECU side of the OTA protocol, for agent programs.")
set(CPACK_DEBIAN_SDK_RUNTIME_PACKAGE_SECTION libs)

set(CPACK_DEBIAN_SDK_PACKAGE_NAME libota-agent-dev)
set(CPACK_COMPONENT_SDK_DESCRIPTION
    "OTA agent SDK, development files\n Headers (C and C++), the CMake package OtaAgentSdk, the pkg-config file ota-agent and\n example agents.")
set(CPACK_COMPONENT_SDK_DEPENDS sdk_runtime)
set(CPACK_DEBIAN_SDK_PACKAGE_SECTION libdevel)

include(CPack)
