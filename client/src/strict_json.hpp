// Protobuf JSON read strictly: a field the message does not have is an error, not ignored, so that a
// misspelt field in a campaign or a conditions file is noticed.
#pragma once

#include <google/protobuf/message.h>

#include <string>

#include "ota/core/status.hpp"

namespace ota::client {

// Parses `json` into `msg`. kCorrupt names `what` (a file name) and what the parser said.
Status parse_strict_json(const std::string& json, google::protobuf::Message* msg, const std::string& what);

}  // namespace ota::client
