// read_password_file: the broker password of a client, from the file broker-config/render writes.
#include "ota/core/file.hpp"
#include "ota/core/transport.hpp"

namespace ota {

Result<std::string> read_password_file(const std::string& path) {
  auto content = read_small_file(path, 4096);
  if (!content) return content.status();
  std::string pw = *content;
  while (!pw.empty() && (pw.back() == '\n' || pw.back() == '\r')) pw.pop_back();
  if (pw.empty()) return Status(Code::kInvalidArgument, path + ": empty password file");
  return pw;
}

}  // namespace ota
