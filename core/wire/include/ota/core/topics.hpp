// The MQTT topic tree of protocol v1 (docs/PROTOCOL.md). Every topic name used by the client, the SDK,
// the simulators and broker-config/acl comes from here.
//
//   ota/v1/ecu/{ecu}/up/hello    agent  -> client  retained; Last Will (online=false) on the same topic
//   ota/v1/ecu/{ecu}/up/state    agent  -> client  retained
//   ota/v1/ecu/{ecu}/up/ack      agent  -> client  chunk acknowledgements
//   ota/v1/ecu/{ecu}/up/result   agent  -> client  command results
//   ota/v1/ecu/{ecu}/up/dtc      agent  -> client  retained DTC list
//   ota/v1/ecu/{ecu}/down/cmd    client -> agent   commands
//   ota/v1/ecu/{ecu}/down/data   client -> agent   payload chunks
//   ota/v1/vehicle/status        client -> anyone  retained campaign progress
//   ota/v1/vehicle/report        client -> anyone  retained last vehicle report
//   ota/v1/vehicle/control/request  tool -> client  ControlRequest (ota/v1/control.proto)
//   ota/v1/vehicle/control/reply    client -> tools ControlReply
#pragma once

#include <string>
#include <string_view>

namespace ota::topics {

inline constexpr std::string_view kPrefix = "ota/v1/";

enum class Leaf { kUnknown, kHello, kState, kAck, kResult, kDtc, kCmd, kData };

std::string ecu(std::string_view ecu_id, Leaf leaf);
const char* leaf_name(Leaf leaf);  // "up/hello", "down/cmd", ...

// The leaves an agent publishes: the broker's ACL grants an agent these five topics and nothing
// else under its up/, and the client subscribes to exactly these, so nothing an agent invents
// under its subtree (retained or not) is stored for or delivered to the client.
inline constexpr Leaf kAgentUpLeaves[] = {Leaf::kHello, Leaf::kState, Leaf::kAck, Leaf::kResult, Leaf::kDtc};

// Filters.
// Every agent's whole up/ subtree: for observers and tests, which also see what the ACL refused to
// nobody (the broker drops it before any subscriber).
inline constexpr const char* kAllAgentsUp = "ota/v1/ecu/+/up/#";
// One leaf of every agent: ota/v1/ecu/+/{leaf_name(leaf)}, e.g. ota/v1/ecu/+/up/hello.
std::string all_agents_filter(Leaf leaf);
std::string ecu_down_filter(std::string_view ecu_id);  // ota/v1/ecu/{ecu}/down/#

inline constexpr const char* kVehicleStatus = "ota/v1/vehicle/status";
inline constexpr const char* kVehicleReport = "ota/v1/vehicle/report";
// Local control (ota/v1/control.proto): the observer user may publish requests, nothing else.
inline constexpr const char* kControlRequest = "ota/v1/vehicle/control/request";
inline constexpr const char* kControlReply = "ota/v1/vehicle/control/reply";

// Splits "ota/v1/ecu/{ecu}/{up|down}/{leaf}". False for any other topic.
bool parse_ecu_topic(std::string_view topic, std::string* ecu_id, Leaf* leaf);

// The vehicle broker's users that are not ECUs: the client and the read-only observer.
inline constexpr const char* kClientUser = "ota-client";
inline constexpr const char* kObserverUser = "ota-observer";

// The one ECU-id rule, for every program and script that takes an ECU id (broker-config/render
// checks the same pattern). ECU ids are topic segments, MQTT usernames, file names (credentials,
// state) and command-line values, hence: 1-64 characters of [A-Za-z0-9._-], starting with a
// letter or a digit (never ".", ".." or an option), and not a reserved user (kClientUser,
// kObserverUser), which an ECU could otherwise impersonate.
bool valid_ecu_id(std::string_view ecu_id);

// The rule above in words, for error messages: "'x' is not an ECU id (" + kEcuIdRule + ")".
inline constexpr const char* kEcuIdRule =
    "1-64 characters of A-Z a-z 0-9 . _ -, starting with a letter or digit, not ota-client or ota-observer";

}  // namespace ota::topics
