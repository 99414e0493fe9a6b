// TempDir: a private temporary directory, removed with everything in it on destruction.
#pragma once

#include <string>

#include "ota/core/status.hpp"

namespace ota::sim {

class TempDir {
 public:
  // mkdtemp("$TMPDIR/<prefix>XXXXXX"), falling back to /tmp when TMPDIR is unset or empty.
  static Result<TempDir> create(const std::string& prefix = "ota-");

  TempDir(TempDir&& other) noexcept;
  TempDir& operator=(TempDir&& other) noexcept;
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  // Removes the directory recursively, unless the environment has OTA_KEEP_TEMP=1 (then it
  // is left in place and its path printed on stderr, for post-mortem inspection).
  ~TempDir();

  const std::string& path() const noexcept { return path_; }
  // path() + "/" + name.
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  // Gives up ownership: the directory is no longer removed. Returns its path.
  std::string release() noexcept;

 private:
  explicit TempDir(std::string path) : path_(std::move(path)) {}
  void remove_now() noexcept;
  std::string path_;
};

// Removes a file or a directory tree (like rm -rf). OK if it did not exist.
Status remove_tree(const std::string& path);

}  // namespace ota::sim
