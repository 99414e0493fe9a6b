#include "ota/file_device.hpp"

#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "ota/core/file.hpp"

namespace ota::agent {

namespace {
class FileBankWriter : public BankWriter {
 public:
  explicit FileBankWriter(std::unique_ptr<FileSink> sink) : sink_(std::move(sink)) {}
  Status write(const uint8_t* data, size_t n) override { return sink_->write(data, n); }
  Status sync() override { return sink_->sync(); }
  bool concurrent_sync() const override { return true; }  // fdatasync beside pwrite on one descriptor

 private:
  std::unique_ptr<FileSink> sink_;
};
}  // namespace

FileDevice::FileDevice(std::string bank_a, std::string bank_b, std::string boot_file, uint64_t bank_size)
    : bank_a_(std::move(bank_a)),
      bank_b_(std::move(bank_b)),
      boot_file_(std::move(boot_file)),
      bank_size_(bank_size) {}

Result<std::unique_ptr<BankWriter>> FileDevice::open_bank_writer(Bank bank, uint64_t offset) {
  // In place, like a partition: a block device cannot be truncated, and rewriting the pages a bank
  // file already has is much cheaper than growing it anew. finish_install() trims a file to the image.
  auto sink = FileSink::open(bank_path(bank), offset, /*truncate=*/false, Links::kFollow);
  if (!sink) return sink.status();
  return std::unique_ptr<BankWriter>(new FileBankWriter(std::move(*sink)));
}

Result<std::unique_ptr<RandomReader>> FileDevice::open_bank_reader(Bank bank) {
  auto r = FileReader::open(bank_path(bank));
  if (!r) return r.status();
  return std::unique_ptr<RandomReader>(std::move(*r));
}

Status FileDevice::finish_install(Bank bank, const ImageInfo& image) {
  const std::string& path = bank_path(bank);
  struct stat sb {};
  if (::stat(path.c_str(), &sb) != 0)
    return Status(Code::kIoError, "stat " + path + ": " + std::strerror(errno));
  if (!S_ISREG(sb.st_mode) || static_cast<uint64_t>(sb.st_size) <= image.size) return Status::ok();
  // A bank file holds exactly its image (what was there before may have been longer).
  if (::truncate(path.c_str(), static_cast<off_t>(image.size)) != 0) {
    return Status(Code::kIoError, "truncate " + path + ": " + std::strerror(errno));
  }
  return Status::ok();
}

Status FileDevice::activate(Bank bank, const ImageInfo&) {
  return atomic_write_file(boot_file_, bank_name(bank));
}

Status FileDevice::rollback(Bank previous) { return atomic_write_file(boot_file_, bank_name(previous)); }

Bank FileDevice::booted_bank(Bank activated) {
  auto boot = read_small_file(boot_file_, 64);
  if (!boot) return activated;
  if (*boot == "A") return Bank::kA;
  if (*boot == "B") return Bank::kB;
  return activated;
}

uint64_t FileDevice::free_space() const {
  struct statvfs vfs {};
  std::string dir =
      boot_file_.substr(0, boot_file_.rfind('/') == std::string::npos ? 0 : boot_file_.rfind('/'));
  if (::statvfs(dir.empty() ? "." : dir.c_str(), &vfs) != 0) return 0;
  return static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize;
}

}  // namespace ota::agent
