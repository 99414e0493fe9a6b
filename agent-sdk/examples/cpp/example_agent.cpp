// Example OTA agent in C++: an ECU whose two flash banks are two files.
// A real ECU implements ota::agent::Device over its flash driver and bootloader (a Linux ECU with
// banks on block devices can use ota::agent::FileDevice from <ota/file_device.hpp> as is).
// Stop it with Ctrl-C (SIGINT) or SIGTERM.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <string>

#include <ota/agent.hpp>

using ota::Code;
using ota::Status;
using ota::agent::Bank;

namespace {

Status io_error(const std::string& what) {
  return Status(Code::kIoError, what + ": " + std::strerror(errno));
}

// Writes a bank sequentially, starting where the agent opened it.
class BankFileWriter : public ota::agent::BankWriter {
 public:
  BankFileWriter(int fd, uint64_t offset) : fd_(fd), offset_(offset) {}
  Status write(const uint8_t* data, size_t n) override {
    while (n > 0) {
      ssize_t k = ::pwrite(fd_, data, n, static_cast<off_t>(offset_));
      if (k < 0) return io_error("write bank");
      data += k, n -= static_cast<size_t>(k), offset_ += static_cast<uint64_t>(k);
    }
    return Status::ok();
  }
  Status sync() override { return ::fdatasync(fd_) == 0 ? Status::ok() : io_error("sync bank"); }

 private:
  int fd_;
  uint64_t offset_;
};

class BankFileReader : public ota::RandomReader {
 public:
  BankFileReader(int fd, uint64_t size) : fd_(fd), size_(size) {}
  uint64_t size() const override { return size_; }
  Status read_at(uint64_t offset, uint8_t* buf, size_t n) override {
    if (offset > size_ || n > size_ - offset) return Status(Code::kCorrupt, "read beyond the bank's image");
    while (n > 0) {
      ssize_t k = ::pread(fd_, buf, n, static_cast<off_t>(offset));
      if (k <= 0) return k < 0 ? io_error("read bank") : Status(Code::kCorrupt, "bank file shrank");
      buf += k, n -= static_cast<size_t>(k), offset += static_cast<uint64_t>(k);
    }
    return Status::ok();
  }

 private:
  int fd_;
  uint64_t size_;
};

// The device: everything the SDK needs to know about this ECU's flash and boot selection.
class ExampleEcu : public ota::agent::Device {
 public:
  ExampleEcu(const std::string& bank_a, const std::string& bank_b, uint64_t bank_size)
      : fd_{::open(bank_a.c_str(), O_RDWR | O_CREAT, 0644), ::open(bank_b.c_str(), O_RDWR | O_CREAT, 0644)},
        boot_file_(bank_a + ".boot"),
        bank_size_(bank_size) {}
  ~ExampleEcu() override {
    for (int fd : fd_)
      if (fd >= 0) ::close(fd);
  }
  bool ok() const { return fd_[0] >= 0 && fd_[1] >= 0; }

  uint64_t bank_size() const override { return bank_size_; }

  ota::Result<std::unique_ptr<ota::agent::BankWriter>> open_bank_writer(Bank bank, uint64_t offset) override {
    // A new transfer starts at 0, a resumed one at the last durable offset: drop what follows.
    if (::ftruncate(fd(bank), static_cast<off_t>(offset)) != 0) return io_error("truncate bank");
    return std::unique_ptr<ota::agent::BankWriter>(new BankFileWriter(fd(bank), offset));
  }

  ota::Result<std::unique_ptr<ota::RandomReader>> open_bank_reader(Bank bank) override {
    struct stat st {};
    if (::fstat(fd(bank), &st) != 0) return io_error("stat bank");
    return std::unique_ptr<ota::RandomReader>(
        new BankFileReader(fd(bank), static_cast<uint64_t>(st.st_size)));
  }

  Status activate(Bank bank, const ota::agent::ImageInfo& image) override {
    std::cout << "activating bank " << ota::agent::bank_name(bank) << ": " << image.version << std::endl;
    return set_boot(bank);
  }

  Status health_check(Bank bank, std::chrono::milliseconds /*timeout*/) override {
    std::cout << "health check on bank " << ota::agent::bank_name(bank) << ": OK"
              << std::endl;  // e.g. ask the app
    return Status::ok();
  }

  Status rollback(Bank previous) override { return set_boot(previous); }

  std::vector<ota::agent::Dtc> read_dtcs() override { return {}; }  // e.g. from the diagnostic stack

 private:
  int fd(Bank b) const { return fd_[b == Bank::kA ? 0 : 1]; }

  // Records the boot bank atomically: write a temporary file, fsync, rename over the old one.
  Status set_boot(Bank bank) {
    const std::string tmp = boot_file_ + ".tmp";
    int f = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (f < 0) return io_error("boot file");
    bool ok = ::write(f, ota::agent::bank_name(bank), 1) == 1 && ::fsync(f) == 0;
    ::close(f);
    if (!ok || ::rename(tmp.c_str(), boot_file_.c_str()) != 0) return io_error("boot file");
    return Status::ok();
  }

  int fd_[2];
  std::string boot_file_;
  uint64_t bank_size_;
};

}  // namespace

int main(int argc, char** argv) {
  std::map<std::string, std::string> args{{"--broker", "tcp://127.0.0.1:1883"},
                                          {"--bank-a", "bank_a.img"},
                                          {"--bank-b", "bank_b.img"},
                                          {"--bank-size", "67108864"}};
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::cout << "usage: " << argv[0] << " --ecu ID --state-dir DIR [--broker URI] [--password-file FILE]\n"
                << "          [--bank-a FILE] [--bank-b FILE] [--bank-size BYTES]\n"
                << "OTA agent SDK " << ota::agent::sdk_version() << "\n";
      return 0;
    }
    if (a == "--version") {
      std::cout << "example-agent-cpp " << ota::agent::sdk_version() << "\n";
      return 0;
    }
    if (i + 1 < argc) args[a] = argv[++i];
  }
  if (args["--ecu"].empty() || args["--state-dir"].empty()) {
    std::cerr << "--ecu and --state-dir are required (see --help)\n";
    return 2;
  }

  ota::agent::AgentConfig cfg;
  cfg.ecu_id = args["--ecu"];
  cfg.broker_uri = args["--broker"];
  cfg.state_dir = args["--state-dir"];
  cfg.hardware_id = "example-hw";
  if (!args["--password-file"].empty()) {
    std::ifstream in(args["--password-file"]);
    if (!std::getline(in, cfg.password)) {
      std::cerr << "cannot read " << args["--password-file"] << "\n";
      return 2;
    }
  }

  ExampleEcu ecu(args["--bank-a"], args["--bank-b"], std::stoull(args["--bank-size"]));
  if (!ecu.ok()) {
    std::cerr << "cannot open the bank files: " << std::strerror(errno) << "\n";
    return 1;
  }

  // Block SIGINT/SIGTERM before the agent starts threads (they inherit the mask), then wait for
  // them here: Agent::stop() is not async-signal-safe, so it cannot run in a signal handler.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);

  ota::agent::Agent agent(cfg, ecu);  // the device must outlive the agent
  if (Status st = agent.start(); !st) {
    std::cerr << "start: " << st.to_string() << "\n";
    return 1;
  }
  std::cout << cfg.ecu_id << " running on bank " << ota::agent::bank_name(agent.active_bank()) << std::endl;
  int sig = 0;
  sigwait(&sigs, &sig);
  agent.stop();
  return 0;
}
