// FileDevice: a Device whose banks are files (or block devices) on a Linux filesystem, e.g.
// /dev/mmcblk0p2 and p3, or two image files. The boot selection is a small file written atomically.
// Useful as is for Linux-based ECUs and as the base of simulators; a supplier with a custom flash
// driver implements Device directly.
#pragma once

#include <string>

#include "ota/agent.hpp"

namespace ota::agent {

class FileDevice : public Device {
 public:
  // bank_a/bank_b: paths of the two banks; boot_file: where the selected boot bank is recorded.
  // bank_size: capacity of one bank in bytes.
  FileDevice(std::string bank_a, std::string bank_b, std::string boot_file, uint64_t bank_size);

  uint64_t bank_size() const override { return bank_size_; }
  ota::Result<std::unique_ptr<BankWriter>> open_bank_writer(Bank bank, uint64_t offset) override;
  ota::Result<std::unique_ptr<ota::RandomReader>> open_bank_reader(Bank bank) override;
  // Banks are written in place; a bank that is a regular file is trimmed to the image here.
  ota::Status finish_install(Bank bank, const ImageInfo& image) override;
  // Records `bank` in the boot file (atomically).
  ota::Status activate(Bank bank, const ImageInfo& image) override;
  ota::Status rollback(Bank previous) override;
  // The bank the boot file names (`activated` when it names none): a bootloader that gave up on a
  // trial boot rewrites the boot file to the previous bank.
  Bank booted_bank(Bank activated) override;
  uint64_t free_space() const override;

  const std::string& bank_path(Bank bank) const { return bank == Bank::kA ? bank_a_ : bank_b_; }

 private:
  std::string bank_a_, bank_b_, boot_file_;
  uint64_t bank_size_;
};

}  // namespace ota::agent
