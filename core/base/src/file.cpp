#include "ota/core/file.hpp"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

namespace ota {

Status errno_status(int err, const std::string& what) {
  std::string msg = what + ": " + std::strerror(err);
  if (err == ENOSPC || err == EDQUOT) return Status(Code::kNoSpace, msg);
  if (err == ENOENT) return Status(Code::kNotFound, msg);
  return Status(Code::kIoError, msg);
}

static Status write_all(int fd, const uint8_t* data, size_t n, const std::string& path) {
  while (n > 0) {
    ssize_t w = ::write(fd, data, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return errno_status(errno, "write " + path);
    }
    data += w;
    n -= static_cast<size_t>(w);
  }
  return Status::ok();
}

static std::string dir_of(const std::string& path) {
  auto pos = path.rfind('/');
  if (pos == std::string::npos) return ".";
  if (pos == 0) return "/";
  return path.substr(0, pos);
}

Status fsync_dir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return errno_status(errno, "open directory " + dir);
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) return errno_status(err, "fsync directory " + dir);
  return Status::ok();
}

namespace {

// The temporary of an atomic write, as a sink.
class FdSink : public ByteSink {
 public:
  FdSink(int fd, const std::string& path) : fd_(fd), path_(path) {}
  Status write(const uint8_t* data, size_t n) override { return write_all(fd_, data, n, path_); }

 private:
  int fd_;
  const std::string& path_;
};

// Creates `tmp` exclusively and without following a link. Something already there is a stale
// temporary of a crashed write, or a planted link: unlink removes the entry itself (never what a link
// points to), and the create is tried once more.
int create_temporary(const std::string& tmp, unsigned mode) {
  constexpr int kFlags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
  int fd = ::open(tmp.c_str(), kFlags, static_cast<mode_t>(mode));
  if (fd < 0 && errno == EEXIST && ::unlink(tmp.c_str()) == 0) {
    fd = ::open(tmp.c_str(), kFlags, static_cast<mode_t>(mode));
  }
  return fd;
}

Result<std::string> read_whole(const std::string& path, size_t max_bytes, int extra_flags) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | extra_flags);
  if (fd < 0) return errno_status(errno, "open " + path);
  struct stat sb {};
  if (::fstat(fd, &sb) != 0) {
    int err = errno;
    ::close(fd);
    return errno_status(err, "stat " + path);
  }
  if (static_cast<uint64_t>(sb.st_size) > max_bytes) {
    ::close(fd);
    return Status(Code::kCorrupt, path + ": " + std::to_string(sb.st_size) + " bytes exceeds the limit of " +
                                      std::to_string(max_bytes));
  }
  std::string out(static_cast<size_t>(sb.st_size), '\0');
  size_t got = 0;
  while (got < out.size()) {
    ssize_t r = ::read(fd, out.data() + got, out.size() - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      int err = r < 0 ? errno : EIO;
      ::close(fd);
      return errno_status(err, "read " + path);
    }
    got += static_cast<size_t>(r);
  }
  ::close(fd);
  return out;
}

}  // namespace

Status atomic_write_stream(const std::string& path, const std::function<Status(ByteSink&)>& fill,
                           unsigned mode) {
  const std::string tmp = path + ".tmp";
  int fd = create_temporary(tmp, mode);
  if (fd < 0) return errno_status(errno, "create " + tmp);
  FdSink sink(fd, tmp);
  Status st = fill(sink);
  // fchmod: the umask may have narrowed the mode asked for; nothing widens it beyond that.
  if (st.is_ok() && ::fchmod(fd, static_cast<mode_t>(mode)) != 0) st = errno_status(errno, "chmod " + tmp);
  if (st.is_ok() && ::fsync(fd) != 0) st = errno_status(errno, "fsync " + tmp);
  ::close(fd);
  if (st.is_ok() && ::rename(tmp.c_str(), path.c_str()) != 0) st = errno_status(errno, "rename " + tmp);
  if (!st.is_ok()) {
    ::unlink(tmp.c_str());
    return st;
  }
  return fsync_dir(dir_of(path));
}

Status atomic_write_file(const std::string& path, std::string_view content, unsigned mode) {
  return atomic_write_stream(
      path,
      [&](ByteSink& sink) {
        return sink.write(reinterpret_cast<const uint8_t*>(content.data()), content.size());
      },
      mode);
}

Result<std::string> read_small_file(const std::string& path, size_t max_bytes) {
  return read_whole(path, max_bytes, 0);
}

Result<std::string> read_state_file(const std::string& path, size_t max_bytes) {
  return read_whole(path, max_bytes, O_NOFOLLOW);
}

Status make_dirs(const std::string& path) {
  if (path.empty()) return Status::ok();
  std::string cur;
  size_t pos = 0;
  while (pos != std::string::npos) {
    pos = path.find('/', pos + 1);
    cur = path.substr(0, pos);
    if (cur.empty()) continue;
    if (::mkdir(cur.c_str(), 0700) != 0 && errno != EEXIST) return errno_status(errno, "mkdir " + cur);
  }
  return Status::ok();
}

Status make_private_dir(const std::string& path) {
  OTA_RETURN_IF_ERROR(make_dirs(path));
  struct stat sb {};
  if (::stat(path.c_str(), &sb) != 0) return errno_status(errno, "stat " + path);
  if (!S_ISDIR(sb.st_mode)) return Status(Code::kRejected, "state directory " + path + " is not a directory");
  char mode[8];
  std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(sb.st_mode & 07777));
  if (sb.st_uid != ::geteuid()) {
    return Status(Code::kRejected, "state directory " + path + " is owned by uid " +
                                       std::to_string(sb.st_uid) + ", not by this process's uid " +
                                       std::to_string(::geteuid()));
  }
  if ((sb.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    return Status(Code::kRejected, "state directory " + path + " has mode " + mode +
                                       ": group or others may write in it (chmod go-w, or 0700)");
  }
  return Status::ok();
}

Result<DirLock> DirLock::acquire(const std::string& dir, const std::string& who) {
  const std::string path = dir + "/lock";
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return errno_status(errno, "open lock file " + path);
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    char buf[32] = {};
    ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
    ::close(fd);
    if (err != EWOULDBLOCK) return errno_status(err, "lock " + path);
    std::string holder = n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string("unknown");
    while (!holder.empty() && (holder.back() == '\n' || holder.back() == ' ')) holder.pop_back();
    return Status(Code::kUnavailable, "state directory " + dir + " is in use by another " + who + " (pid " +
                                          holder + "); only one may run on it");
  }
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, pid.data(), pid.size(), 0) < 0) {
    int err = errno;
    ::close(fd);
    return errno_status(err, "write lock file " + path);
  }
  return DirLock(fd);
}

DirLock& DirLock::operator=(DirLock&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.fd_;
    other.fd_ = -1;
  }
  return *this;
}

DirLock::~DirLock() {
  if (fd_ >= 0) ::close(fd_);  // closing the last descriptor releases the flock
}

Result<std::unique_ptr<FileSink>> FileSink::open(const std::string& path, uint64_t offset, bool truncate,
                                                 Links links) {
  const int nofollow = links == Links::kRefuse ? O_NOFOLLOW : 0;
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | nofollow, 0600);
  if (fd < 0) return errno_status(errno, "open " + path);
  if ((truncate && ::ftruncate(fd, static_cast<off_t>(offset)) != 0) ||
      ::lseek(fd, static_cast<off_t>(offset), SEEK_SET) < 0) {
    int err = errno;
    ::close(fd);
    return errno_status(err, "position " + path + " at " + std::to_string(offset));
  }
  return std::unique_ptr<FileSink>(new FileSink(fd, path, offset));
}

FileSink::~FileSink() { ::close(fd_); }

Status FileSink::write(const uint8_t* data, size_t n) {
  OTA_RETURN_IF_ERROR(write_all(fd_, data, n, path_));
  offset_ += n;
  return Status::ok();
}

Status FileSink::sync() {
  if (::fdatasync(fd_) != 0) return errno_status(errno, "fdatasync " + path_);
  return Status::ok();
}

Result<std::unique_ptr<FileReader>> FileReader::open(const std::string& path, Links links) {
  const int nofollow = links == Links::kRefuse ? O_NOFOLLOW : 0;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | nofollow);
  if (fd < 0) return errno_status(errno, "open " + path);
  struct stat sb {};
  if (::fstat(fd, &sb) != 0) {
    int err = errno;
    ::close(fd);
    return errno_status(err, "stat " + path);
  }
  uint64_t size = static_cast<uint64_t>(sb.st_size);
  if (S_ISBLK(sb.st_mode) && ::ioctl(fd, BLKGETSIZE64, &size) != 0) {  // a partition: st_size is 0
    int err = errno;
    ::close(fd);
    return errno_status(err, "size of block device " + path);
  }
  return std::unique_ptr<FileReader>(new FileReader(fd, path, size));
}

FileReader::~FileReader() { ::close(fd_); }

Status FileReader::read_at(uint64_t offset, uint8_t* buf, size_t n) {
  if (offset > size_ || n > size_ - offset) {
    return Status(Code::kCorrupt, path_ + ": read of " + std::to_string(n) + " bytes at " +
                                      std::to_string(offset) + " is beyond its size " +
                                      std::to_string(size_));
  }
  size_t got = 0;
  while (got < n) {
    ssize_t r = ::pread(fd_, buf + got, n - got, static_cast<off_t>(offset + got));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return errno_status(r < 0 ? errno : EIO, "read " + path_);
    got += static_cast<size_t>(r);
  }
  return Status::ok();
}

Status FileReader::read(uint8_t* buf, size_t cap, size_t* got) {
  size_t n = static_cast<size_t>(std::min<uint64_t>(cap, size_ - pos_));
  *got = 0;
  if (n == 0) return Status::ok();
  OTA_RETURN_IF_ERROR(read_at(pos_, buf, n));
  pos_ += n;
  *got = n;
  return Status::ok();
}

}  // namespace ota
