// What ota-sim simulates, prepared on disk before any process starts: the ECUs' images (version
// 1.0.0 in both banks, 1.1.0 to install, deltas), the campaign, the vehicle conditions, the
// platform's signature (or an attack's) and its package store.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "options.hpp"
#include "ota/core/status.hpp"
#include "ota/v1/ota.pb.h"

namespace ota::sim {

struct Scenario {
  std::string work;               // the work directory (docs/CLIENT.md, section 7)
  std::string bin;                // where the ota-* programs are (ota-sim's own directory)
  std::vector<std::string> ecus;  // bcm, tcu, adas, ...
  uint64_t image_size = 0;
  v1::Campaign campaign;
  std::string trust_root;       // the provisioned root; empty: the campaign is not signed
  std::string client_campaign;  // the campaign file the client (or the platform) gets
  // The campaign travels through the platform (ota-cloud-sim), which serves the payloads from
  // cloud_packages.
  bool use_cloud = false;
  std::string cloud_packages;
};

// Writes images, campaign, conditions, keys and signed campaign into `work`. Errors name the file or
// the step that failed.
Result<Scenario> prepare_scenario(const Options& opt, uint64_t image_size, const std::string& work);

}  // namespace ota::sim
