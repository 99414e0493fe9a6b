#include "ota/file_device.hpp"

#include <sys/statvfs.h>

#include "ota/core/file.hpp"

namespace ota::agent {

namespace {
class FileBankWriter : public BankWriter {
 public:
  explicit FileBankWriter(std::unique_ptr<FileSink> sink) : sink_(std::move(sink)) {}
  Status write(const uint8_t* data, size_t n) override { return sink_->write(data, n); }
  Status sync() override { return sink_->sync(); }

 private:
  std::unique_ptr<FileSink> sink_;
};
}  // namespace

FileDevice::FileDevice(std::string bank_a, std::string bank_b, std::string boot_file, uint64_t bank_size)
    : bank_a_(std::move(bank_a)), bank_b_(std::move(bank_b)), boot_file_(std::move(boot_file)), bank_size_(bank_size) {}

Result<std::unique_ptr<BankWriter>> FileDevice::open_bank_writer(Bank bank, uint64_t offset) {
  auto sink = FileSink::open(bank_path(bank), offset);
  if (!sink) return sink.status();
  return std::unique_ptr<BankWriter>(new FileBankWriter(std::move(*sink)));
}

Result<std::unique_ptr<RandomReader>> FileDevice::open_bank_reader(Bank bank) {
  auto r = FileReader::open(bank_path(bank));
  if (!r) return r.status();
  return std::unique_ptr<RandomReader>(std::move(*r));
}

Status FileDevice::activate(Bank bank, const ImageInfo&) { return atomic_write_file(boot_file_, bank_name(bank)); }

Status FileDevice::rollback(Bank previous) { return atomic_write_file(boot_file_, bank_name(previous)); }

uint64_t FileDevice::free_space() const {
  struct statvfs vfs {};
  std::string dir = boot_file_.substr(0, boot_file_.rfind('/') == std::string::npos ? 0 : boot_file_.rfind('/'));
  if (::statvfs(dir.empty() ? "." : dir.c_str(), &vfs) != 0) return 0;
  return static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize;
}

}  // namespace ota::agent
