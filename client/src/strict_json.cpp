#include "strict_json.hpp"

#include <google/protobuf/util/json_util.h>

namespace ota::client {

Status parse_strict_json(const std::string& json, google::protobuf::Message* msg, const std::string& what) {
  google::protobuf::util::JsonParseOptions opts;
  opts.ignore_unknown_fields = false;
  auto st = google::protobuf::util::JsonStringToMessage(json, msg, opts);
  if (!st.ok()) return Status(Code::kCorrupt, what + ": " + st.ToString());
  return Status::ok();
}

}  // namespace ota::client
