// What every part of ota-cloud-sim shares: its configuration (from the command line, main.cpp),
// the one-line event log on stdout, and the name check of vehicle ids and package names.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace ota::cloudsim {

struct Config {
  std::string broker;
  std::string pki;
  std::string ca, cert, key;
  std::string client_id = "ota-cloud-sim";
  std::string vehicle = "ota-client";
  std::string packages;
  std::string campaign;
  std::string signed_campaign;
  std::string reports_dir;
  bool exit_after_report = false;
  uint64_t drop_after = 0;  // 0: never
  // An offer not acknowledged by the vehicle is published again after this long, doubling up to
  // offer_resend_max.
  std::chrono::milliseconds offer_resend_min{1000};
  std::chrono::milliseconds offer_resend_max{30000};
};

// One line on stdout, "ota-cloud-sim: ...", flushed (tests and ota-sim read it as it is written).
void event(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

// 1..max_len of [A-Za-z0-9._-], not starting with '.': a topic segment and a file name.
bool valid_name(const std::string& s, size_t max_len);

}  // namespace ota::cloudsim
