#include "ota/sim/tempdir.hpp"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <system_error>
#include <vector>

namespace ota::sim {

Result<TempDir> TempDir::create(const std::string& prefix) {
  const char* tmp = std::getenv("TMPDIR");
  std::string base = (tmp != nullptr && *tmp != '\0') ? tmp : "/tmp";
  while (base.size() > 1 && base.back() == '/') base.pop_back();
  std::string templ = base + "/" + prefix + "XXXXXX";
  std::vector<char> buf(templ.begin(), templ.end());
  buf.push_back('\0');
  if (::mkdtemp(buf.data()) == nullptr) {
    return make_error(Code::kIoError, "mkdtemp " + templ + ": " + std::strerror(errno));
  }
  return TempDir(std::string(buf.data()));
}

TempDir::TempDir(TempDir&& other) noexcept : path_(std::move(other.path_)) { other.path_.clear(); }

TempDir& TempDir::operator=(TempDir&& other) noexcept {
  if (this != &other) {
    remove_now();
    path_ = std::move(other.path_);
    other.path_.clear();
  }
  return *this;
}

TempDir::~TempDir() { remove_now(); }

std::string TempDir::release() noexcept {
  std::string p = std::move(path_);
  path_.clear();
  return p;
}

void TempDir::remove_now() noexcept {
  if (path_.empty()) return;
  const char* keep = std::getenv("OTA_KEEP_TEMP");
  if (keep != nullptr && std::strcmp(keep, "1") == 0) {
    std::fprintf(stderr, "OTA_KEEP_TEMP=1: keeping %s\n", path_.c_str());
  } else {
    (void)remove_tree(path_);
  }
  path_.clear();
}

Status remove_tree(const std::string& path) {
  std::error_code ec;
  std::filesystem::remove_all(path, ec);
  if (ec) return make_error(Code::kIoError, "remove " + path + ": " + ec.message());
  return Status::ok();
}

}  // namespace ota::sim
