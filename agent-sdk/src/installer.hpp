// Turns the payload received into the target image in the inactive bank: the payload's size and
// SHA-256 checked against the target (every byte durable first), a delta reconstructed against the
// active image, never past the target's size, and the result's size and SHA-256 checked, then the
// device's own final check (finish_install). The target held was bound to the signed metadata at
// StartTransfer (target_checks.hpp); the comparisons are the trust layer's (check_payload,
// check_installed).
//
// Threading: protocol thread only.
#pragma once

#include "disk_state.hpp"
#include "ota/agent.hpp"
#include "receiver.hpp"

namespace ota::agent_impl {

class Installer {
 public:
  // All must outlive the Installer.
  Installer(std::string ecu_id, agent::Device& dev, const DiskState& disk, Receiver& receiver)
      : ecu_id_(std::move(ecu_id)), dev_(dev), disk_(disk), receiver_(receiver) {}

  // Installs the target held into the inactive bank. Errors: kNotFound when not every payload byte
  // is durable (the client resumes the transfer), kHashMismatch for a payload or image that is not
  // the target, or the device's error.
  Status install();

 private:
  Status verify_payload();
  Status reconstruct();

  const std::string ecu_id_;
  agent::Device& dev_;
  const DiskState& disk_;
  Receiver& receiver_;
};

// What the Device is told about the target image held.
agent::ImageInfo image_info(const v1::Target& t);

}  // namespace ota::agent_impl
