// Durable files: how every piece of state on disk is written so that a kill -9 or a power cut at any
// moment leaves either the old or the new content, never a mix.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "ota/core/io.hpp"
#include "ota/core/status.hpp"

namespace ota {

// Writes content to path atomically: write to "path.tmp", fsync, rename over path, fsync the directory.
// Errors: kIoError naming the path and errno text (e.g. "No space left on device" maps to kNoSpace).
Status atomic_write_file(const std::string& path, std::string_view content);

// Reads a whole small file (state, metadata). Fails with kCorrupt if it is larger than max_bytes,
// kNotFound if it does not exist.
Result<std::string> read_small_file(const std::string& path, size_t max_bytes = 1 << 20);

// Creates a directory and its parents (mode 0700 for new ones).
Status make_dirs(const std::string& path);

// fsyncs a directory so that renames and creations in it are durable.
Status fsync_dir(const std::string& dir);

// Maps an errno value to a Status: ENOSPC -> kNoSpace, ENOENT -> kNotFound, others -> kIoError.
Status errno_status(int err, const std::string& what);

// A file opened for positional writing, e.g. a file-backed flash bank or a staging area.
class FileSink : public ByteSink {
 public:
  // Opens (creating if needed) path; subsequent writes start at offset. With `truncate` the file
  // ends there, so a resumed transfer continues exactly where the durable data ends; without it the
  // bytes after offset stay until overwritten (a partition, or a bank file written in place).
  static Result<std::unique_ptr<FileSink>> open(const std::string& path, uint64_t offset,
                                                bool truncate = true);
  ~FileSink() override;
  Status write(const uint8_t* data, size_t n) override;
  // fdatasync: everything written so far is durable when this returns OK.
  Status sync();
  uint64_t offset() const { return offset_; }

 private:
  FileSink(int fd, std::string path, uint64_t offset) : fd_(fd), path_(std::move(path)), offset_(offset) {}
  int fd_;
  std::string path_;
  uint64_t offset_;
};

// Random and sequential reads of a file, e.g. the active bank as the base of a delta.
class FileReader : public RandomReader, public ByteSource {
 public:
  static Result<std::unique_ptr<FileReader>> open(const std::string& path);
  ~FileReader() override;
  uint64_t size() const override { return size_; }
  Status read_at(uint64_t offset, uint8_t* buf, size_t n) override;
  Status read(uint8_t* buf, size_t cap, size_t* got) override;

 private:
  FileReader(int fd, std::string path, uint64_t size) : fd_(fd), path_(std::move(path)), size_(size) {}
  int fd_;
  std::string path_;
  uint64_t size_;
  uint64_t pos_ = 0;
};

}  // namespace ota
