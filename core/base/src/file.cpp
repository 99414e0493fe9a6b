#include "ota/core/file.hpp"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
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

Status atomic_write_file(const std::string& path, std::string_view content) {
  const std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return errno_status(errno, "create " + tmp);
  Status st = write_all(fd, reinterpret_cast<const uint8_t*>(content.data()), content.size(), tmp);
  if (st.is_ok() && ::fsync(fd) != 0) st = errno_status(errno, "fsync " + tmp);
  ::close(fd);
  if (st.is_ok() && ::rename(tmp.c_str(), path.c_str()) != 0) st = errno_status(errno, "rename " + tmp);
  if (!st.is_ok()) {
    ::unlink(tmp.c_str());
    return st;
  }
  return fsync_dir(dir_of(path));
}

Result<std::string> read_small_file(const std::string& path, size_t max_bytes) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
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

Result<std::unique_ptr<FileSink>> FileSink::open(const std::string& path, uint64_t offset, bool truncate) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
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

Result<std::unique_ptr<FileReader>> FileReader::open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
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
