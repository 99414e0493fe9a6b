#include "options.hpp"

#include "ota/platform/campaign_signing.hpp"

namespace ota::sim {
namespace {

// "ECU:VALUE" options, repeatable.
std::map<std::string, std::string> per_ecu(const std::vector<std::string>& items, const std::string& flag) {
  std::map<std::string, std::string> out;
  for (const auto& it : items) {
    auto colon = it.find(':');
    if (colon == std::string::npos) throw CLI::ValidationError(flag, "expected ECU:VALUE, got '" + it + "'");
    out[it.substr(0, colon)] = it.substr(colon + 1);
  }
  return out;
}

void add_fault_options(CLI::App& app, Options& o) {
  app.add_option("--fail", o.fail, "ECU:PHASE - make an ECU fail at transfer|install|activate|health|commit");
  app.add_option("--crash", o.crash,
                 "ECU:PHASE - make an ECU's agent crash (SIGKILL) at install|activate|health|commit");
  app.add_option("--fail-offset", o.fail_offset, "ECU:BYTES - fail an ECU's flash write at this offset");
  app.add_option("--write-speed", o.write_speed, "flash write speed of every ECU, MB/s (0: disk speed)");
  app.add_option("--dtcs", o.dtcs, "active DTCs per ECU before the update (the campaign resolves the first)");
  app.add_option("--dtc-text-bytes", o.dtc_text_bytes,
                 "pad every agent's DTC descriptions to this many bytes")
      ->check(CLI::Range(size_t{0}, size_t{65536}));
}

void add_trigger_options(CLI::App& app, Options& o) {
  app.add_option("--cancel-at", o.cancel_at, "cancel the campaign when this percent is transferred");
  app.add_option("--kill-client-at", o.kill_client_at, "kill -9 the client at this percent, then restart it");
  app.add_option(
         "--restart-broker-at", o.restart_broker_at,
         "kill -9 the broker when every ECU has this percent acknowledged, then restart it on the same port")
      ->check(CLI::Range(0, 100));
  app.add_option("--kill", o.kill,
                 "WHO@WHEN - kill -9 WHO (client, broker, agent:ECU) when WHEN is reached (ECU:PHASE, "
                 "decision:commit|rollback|cancel, committed:N), then restart it at once; repeatable");
}

void add_trust_options(CLI::App& app, Options& o) {
  app.add_option("--attack", o.attack, "sign or tamper as an attacker would; the campaign must be refused")
      ->check(CLI::IsMember(attack_names()));
  auto* rotate = app.add_flag(
      "--rotate-root", o.rotate_root,
      "the platform rotates its root to version 2 (new root and director keys) and ships it with "
      "the campaign; vehicle and ECUs are provisioned with version 1");
  app.add_flag("--no-cloud", o.no_cloud,
               "give the client the campaign file directly (no platform, no downloads)");
  app.add_flag("--unsigned", o.unsigned_campaign,
               "do not sign the campaign (the client allows unsigned: development only)");
  rotate->excludes("--unsigned");
}

}  // namespace

void add_options(CLI::App& app, Options& o) {
  app.add_option("--agents", o.agents, "number of ECUs")->check(CLI::Range(1, 64));
  app.add_option("--image-size", o.image_size, "image size per ECU (e.g. 8MiB, 512KiB, 1GiB)");
  app.add_option("--report", o.report, "write the vehicle report (JSON) here");
  app.add_option("--work-dir", o.work_dir, "keep everything (images, logs, state) in this directory");
  app.add_flag("--keep", o.keep, "keep the temporary work directory");
  app.add_flag("--delta", o.delta, "offer deltas (ECUs that can take them get them)");
  app.add_option("--full-only", o.full_only, "the first K ECUs do not accept deltas (mixed campaign)");
  add_fault_options(app, o);
  app.add_option("--chunk-size", o.chunk_size, "chunk size in bytes");
  app.add_option("--window", o.window,
                 "chunks in flight per ECU (0: the client shares 4 among the ECUs of a group)");
  app.add_option("--soc", o.soc, "battery state of charge, percent");
  app.add_option("--min-soc", o.min_soc, "the campaign's minimum state of charge, percent");
  app.add_flag("--not-parked", o.not_parked, "the vehicle is moving");
  app.add_flag("--ignition-on", o.ignition_on, "the ignition is on");
  app.add_option("--consent", o.consent, "owner's answers in order: accept, decline, postpone:MS")
      ->delimiter(',');
  add_trigger_options(app, o);
  app.add_flag("--non-atomic", o.non_atomic, "ECUs commit independently (default: one atomic group)");
  app.add_option("--health-timeout-ms", o.health_timeout_ms, "health check timeout per ECU");
  app.add_option("--timeout", o.timeout_s, "give up after this many seconds");
  app.add_flag("-q,--quiet", o.quiet, "no progress output");
  add_trust_options(app, o);
}

EcuFaults ecu_faults(const Options& o) {
  return EcuFaults{per_ecu(o.fail, "--fail"), per_ecu(o.crash, "--crash"),
                   per_ecu(o.fail_offset, "--fail-offset")};
}

}  // namespace ota::sim
