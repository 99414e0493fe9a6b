// Durable files: how every piece of state on disk is written so that a kill -9 or a power cut at any
// moment leaves either the old or the new content, never a mix.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "ota/core/io.hpp"
#include "ota/core/status.hpp"

namespace ota {

// State files. Everything a process keeps in its state directory is opened without following a
// symbolic link (O_NOFOLLOW): a link planted in a state directory by someone else makes the open
// fail (ELOOP, kIoError naming the path) instead of writing through it to a file elsewhere.
// Temporaries are created with O_EXCL | O_NOFOLLOW; a stale temporary (a crash between create and
// rename) or a link in its place is removed with unlink, which never follows it.

// Writes content to path atomically: create "path.tmp" (mode `mode`, exclusively, not through a
// link), write, fsync, rename over path, fsync the directory. A link at `path` itself is replaced,
// not followed. Errors: kIoError naming the path and errno text (ENOSPC maps to kNoSpace).
Status atomic_write_file(const std::string& path, std::string_view content, unsigned mode = 0600);

// The same for content produced as a stream: `fill` writes into the temporary (a failure there, or
// in syncing or renaming, removes the temporary and leaves `path` as it was).
Status atomic_write_stream(const std::string& path, const std::function<Status(ByteSink&)>& fill,
                           unsigned mode = 0600);

// Reads a whole small file (configuration, metadata), following links. Fails with kCorrupt if it is
// larger than max_bytes, kNotFound if it does not exist.
Result<std::string> read_small_file(const std::string& path, size_t max_bytes = 1 << 20);

// read_small_file for a state file: refuses a symbolic link at `path` (kIoError, "Too many levels of
// symbolic links"), so that state is never read from a file outside the state directory.
Result<std::string> read_state_file(const std::string& path, size_t max_bytes = 1 << 20);

// Creates a directory and its parents (mode 0700 for new ones).
Status make_dirs(const std::string& path);

// A state directory: created (with its parents) mode 0700 if missing; then refused (kRejected,
// naming the directory, its owner and mode) unless it is a directory owned by the running user that
// neither group nor others may write, since whoever can write in it can plant files and links there.
Status make_private_dir(const std::string& path);

// fsyncs a directory so that renames and creations in it are durable.
Status fsync_dir(const std::string& dir);

// One process per state directory: an exclusive flock(2) on `{dir}/lock`, held while this object
// lives (and released by the kernel if the process dies, so a crash never leaves it stale). The
// file holds the holder's pid, for the error of the next one. Not copyable; movable.
class DirLock {
 public:
  // Takes the lock without waiting. kUnavailable when another process (or another DirLock of this
  // process) holds it: "state directory D is in use by another <who> (pid N)"; kIoError otherwise.
  static Result<DirLock> acquire(const std::string& dir, const std::string& who);
  DirLock(DirLock&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  DirLock& operator=(DirLock&& other) noexcept;
  DirLock(const DirLock&) = delete;
  DirLock& operator=(const DirLock&) = delete;
  ~DirLock();

 private:
  explicit DirLock(int fd) : fd_(fd) {}
  int fd_ = -1;
};

// Maps an errno value to a Status: ENOSPC -> kNoSpace, ENOENT -> kNotFound, others -> kIoError.
Status errno_status(int err, const std::string& what);

// Whether opening a file follows a symbolic link at its path.
enum class Links { kRefuse, kFollow };

// A file opened for positional writing, e.g. a file-backed flash bank or a staging area.
class FileSink : public ByteSink {
 public:
  // Opens (creating if needed, mode 0600) path; subsequent writes start at offset. With `truncate`
  // the file ends there, so a resumed transfer continues exactly where the durable data ends;
  // without it the bytes after offset stay until overwritten (a partition, or a bank file written
  // in place). A symbolic link at path is refused (a state file) unless links is kFollow (a bank
  // named by the integrator, e.g. /dev/disk/by-partlabel/...).
  static Result<std::unique_ptr<FileSink>> open(const std::string& path, uint64_t offset,
                                                bool truncate = true, Links links = Links::kRefuse);
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
  // Follows links by default (payload files, banks); kRefuse for a state file such as a staging
  // area, which must be the file in the state directory itself.
  static Result<std::unique_ptr<FileReader>> open(const std::string& path, Links links = Links::kFollow);
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
