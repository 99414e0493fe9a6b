// Vehicle conditions from a JSON file (VehicleConditions), for simulation and tests.
#pragma once

#include <string>

#include "campaign.hpp"

namespace ota::client {

// Re-reads the file at every check, so that a simulator or a test can change the conditions while
// the client runs. With an empty path: parked, ignition off, full battery. An unreadable or invalid
// file is an error (the runner then treats the pre-conditions as not met).
class FileVehicleState : public VehicleStateSource {
 public:
  explicit FileVehicleState(std::string path) : path_(std::move(path)) {}
  Result<v1::VehicleConditions> read() override;

 private:
  std::string path_;
};

}  // namespace ota::client
