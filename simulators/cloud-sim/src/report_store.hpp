// The platform's store of vehicle reports, one per (vehicle, campaign id): with --reports-dir, the
// file DIR/<vehicle>-<campaign id>.json (protobuf JSON, proto field names; "<vehicle>-unnamed.json"
// when the id is empty or not a usable file name), written atomically; without, in memory. A
// report of a campaign already stored is a duplicate: it is not stored again (the vehicle resends
// until it sees the ReportAck, so duplicates are normal). The files already in the directory count
// as stored, so a restarted platform still recognises duplicates.
#pragma once

#include <set>
#include <string>

#include "ota/core/status.hpp"
#include "ota/v1/ota.pb.h"

namespace ota::cloudsim {

class ReportStore {
 public:
  explicit ReportStore(std::string dir) : dir_(std::move(dir)) {}

  // Creates the directory when one is set. Errors: it cannot be created.
  Status open();
  // Stores the report unless one of its campaign is stored: true when stored now, false for a
  // duplicate. *path: where it is (or "(not saved: no --reports-dir)"). Errors: the write failed
  // (then nothing is stored and no ack is due).
  Result<bool> store(const std::string& vehicle, const v1::VehicleReport& report, std::string* path);

 private:
  std::string dir_;
  std::set<std::string> seen_;  // "<vehicle>-<key>", without a directory
};

}  // namespace ota::cloudsim
