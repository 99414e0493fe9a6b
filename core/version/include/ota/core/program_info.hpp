// What every program prints for --version: "NAME VERSION" on its first line (the form help2man and
// packaging tools read), then the wire protocol it speaks when it speaks one.
#pragma once

#include <string>

#include "ota/core/version.hpp"

namespace ota {

// "ota-pack 0.1.0". `program` is the installed program name.
inline std::string version_text(const std::string& program) { return program + " " + kVersion; }

}  // namespace ota
