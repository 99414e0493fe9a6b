#include "report_store.hpp"

#include <google/protobuf/util/json_util.h>

#include <filesystem>

#include "ota/core/file.hpp"
#include "sim_common.hpp"

namespace ota::cloudsim {

Status ReportStore::open() { return dir_.empty() ? Status::ok() : make_dirs(dir_); }

Result<bool> ReportStore::store(const std::string& vehicle, const v1::VehicleReport& report,
                                std::string* path) {
  const std::string key =
      vehicle + "-" + (valid_name(report.campaign_id(), 100) ? report.campaign_id() : std::string("unnamed"));
  if (dir_.empty()) {
    *path = "(not saved: no --reports-dir)";
    return seen_.insert(key).second;
  }
  *path = dir_ + "/" + key + ".json";
  std::error_code ec;
  if (std::filesystem::exists(*path, ec)) return false;
  google::protobuf::util::JsonPrintOptions opts;
  opts.add_whitespace = true;
  opts.preserve_proto_field_names = true;
  opts.always_print_primitive_fields = true;
  std::string json;
  (void)google::protobuf::util::MessageToJsonString(report, &json, opts);
  OTA_RETURN_IF_ERROR(atomic_write_file(*path, json));
  return true;
}

}  // namespace ota::cloudsim
