// Serves DownloadRequests from the files of --packages: exactly one DownloadChunk per request
// with a valid request id (the data, or an error), on down/download/{request_id}. With
// --drop-download-after N it stops answering one download once N bytes of its package were served
// (tests resume). Runs on ota-cloud-sim's loop thread only.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>

#include "ota/core/file.hpp"
#include "ota/v1/cloud.pb.h"
#include "sim_common.hpp"

namespace ota::cloudsim {

class PackageServer {
 public:
  // publish(topic, payload): QoS 1, not retained.
  using Publish = std::function<void(const std::string& topic, const std::string& payload)>;
  PackageServer(const Config& cfg, Publish publish) : cfg_(cfg), publish_(std::move(publish)) {}

  void serve(const std::string& vehicle, const std::string& payload);

 private:
  void answer(const std::string& vehicle, v1::DownloadChunk& chunk);
  void refuse(const std::string& vehicle, v1::DownloadChunk& chunk, const Status& why);
  bool drop(const v1::DownloadRequest& req);
  FileReader* open_package(const std::string& name);

  const Config& cfg_;
  Publish publish_;
  std::map<std::string, uint64_t> served_;  // package -> bytes served
  std::string dropped_download_;
  std::set<std::string> seen_downloads_;                        // at most 10000, then forgotten
  std::map<std::string, std::unique_ptr<FileReader>> readers_;  // at most 64 open
};

}  // namespace ota::cloudsim
