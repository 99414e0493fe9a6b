// The client's configuration: one typed ClientConfig, read once from TOML (docs/CLIENT.md, section 2)
// and written back to TOML by whoever provisions a client (ota-sim, tests).
//
// The schema is closed: every section and key is known, and an unknown section or key, a value of
// the wrong type or out of range is an error naming the key and its line. Defaults live in one place,
// the member initialisers below; an empty string means "not set" for every key whose default is
// empty.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "ota/core/status.hpp"

namespace ota::client {

// Bounds on what a configuration may hold.
inline constexpr size_t kMaxConfigBytes = 1 << 20;
inline constexpr size_t kMaxConfigEcus = 256;
inline constexpr size_t kMaxConsentAnswers = 64;
inline constexpr int64_t kMaxTimeoutMs = 24 * 3600 * 1000;
// A campaign's deadline ([timeouts] campaign_ms) may be longer than any other wait: a week.
inline constexpr int64_t kMaxCampaignMs = 7 * kMaxTimeoutMs;
// The progress floor of a transfer ([transfer] min_rate): 1 byte/s to 1 GiB/s.
inline constexpr int64_t kMaxMinRate = int64_t{1} << 30;

struct ClientConfig {
  struct Vehicle {
    std::string vin;                // a signed campaign must name it; empty: an unsigned one is not checked
    std::vector<std::string> ecus;  // waited for at start-up (valid ECU ids)
  } vehicle;
  struct Broker {
    std::string uri = "tcp://127.0.0.1:1883";
    std::string username = "ota-client";
    std::string password_file;  // first line is the password; empty: no password
    std::string tls_ca;         // set: TLS, the broker's certificate checked against it
    std::string tls_cert;
    std::string tls_key;
  } broker;
  struct State {
    std::string dir = "/var/lib/ota-client";  // journal, trust state (by default), download cache
  } state;
  struct Conditions {
    std::string file;  // VehicleConditions JSON; empty: parked, ignition off, full battery
  } conditions;
  struct Report {
    std::string file;  // where the final report is written (JSON); empty: not written
  } report;
  struct Campaign {
    std::string file;  // campaign to run (JSON); empty: from the platform, or none
  } campaign;
  struct Consent {
    std::vector<std::string> answers;  // "accept", "decline", "postpone:MILLISECONDS"; empty: accept
  } consent;
  struct Timeouts {
    int64_t agent_ms = 30000;  // agents online at start-up, answers to commands
    int64_t stall_ms = 5000;   // a transfer without acknowledgement progress is re-synchronised
    int64_t campaign_ms = 0;   // the campaign's deadline; 0: derived from the bytes to send
  } timeouts;
  struct Transfer {
    int64_t min_rate = 16384;        // progress floor of every transfer, bytes per second
    int64_t rate_window_ms = 30000;  // the floor holds over each window of this length
  } transfer;
  struct Trust {
    std::string root;  // provisioned root metadata; set: campaigns must be signed
    std::string dir;   // trust state; empty: STATE/trust
    bool allow_unsigned = false;
    std::string ecu_keys;  // directory of <ecu_id>.pub: those ECUs must sign their commit results
  } trust;
  struct Cloud {
    std::string uri;  // the platform's broker (ssl://); empty: no cloud link
    std::string ca;
    std::string cert;
    std::string key;
    std::string vehicle = "ota-client";  // vehicle id in the cloud topic tree
  } cloud;

  // trust.dir, or STATE/trust when it is not set.
  std::string trust_dir() const;
};

// Every key compares equal (for round-trip checks).
bool operator==(const ClientConfig& a, const ClientConfig& b);
inline bool operator!=(const ClientConfig& a, const ClientConfig& b) { return !(a == b); }

// Parses a configuration. `origin` (a file name) starts every error message. Errors are
// kInvalidArgument: "ORIGIN:LINE: SECTION.KEY: what is wrong" (a TOML syntax error: "ORIGIN:LINE:
// what toml++ says").
Result<ClientConfig> parse_client_config(std::string_view toml, const std::string& origin);

// Reads (at most kMaxConfigBytes) and parses a configuration file.
Result<ClientConfig> load_client_config(const std::string& path);

// TOML text for `config`, sections and keys in the schema's order, strings escaped by toml++.
// Keys at their default are left out; with `complete`, every key is written, and those not set (an
// empty string or list whose default is empty) appear as comments: the whole effective
// configuration. Either way parse_client_config(to_toml(c)) == c for every valid c.
std::string to_toml(const ClientConfig& config, bool complete = false);

// One key of the schema, for documentation and its check.
struct ConfigKey {
  std::string section;
  std::string key;
  std::string type;           // "string", "boolean", "integer", "array of strings"
  std::string default_value;  // as TOML ("\"ota-client\"", "30000", "false"); empty: not set
};
std::vector<ConfigKey> client_config_schema();

// A scripted consent answer ([consent] answers): "accept", "decline" or "postpone:MILLISECONDS"
// (0 to kMaxTimeoutMs). kInvalidArgument names what is wrong.
struct ConsentStep {
  enum Kind { kAccept, kDecline, kPostpone } kind = kAccept;
  std::chrono::milliseconds postpone_for{0};
};
Result<ConsentStep> parse_consent_step(std::string_view text);

}  // namespace ota::client
