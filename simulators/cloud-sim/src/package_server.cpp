#include "package_server.hpp"

#include <algorithm>
#include <filesystem>

#include "ota/core/codec.hpp"
#include "ota/core/crc32c.hpp"

namespace ota::cloudsim {

void PackageServer::answer(const std::string& vehicle, v1::DownloadChunk& chunk) {
  codec::set_protocol(chunk.mutable_protocol());
  publish_("ota/v1/cloud/" + vehicle + "/down/download/" + chunk.request_id(), chunk.SerializeAsString());
}

void PackageServer::refuse(const std::string& vehicle, v1::DownloadChunk& chunk, const Status& why) {
  event("download request %s from %s refused: %s", chunk.request_id().c_str(), vehicle.c_str(),
        why.to_string().c_str());
  codec::to_wire(why, v1::PHASE_TRANSFER, chunk.mutable_error());
  answer(vehicle, chunk);
}

// --drop-download-after: true when this request is not to be answered.
bool PackageServer::drop(const v1::DownloadRequest& req) {
  if (!dropped_download_.empty()) return req.download_id() == dropped_download_;
  if (cfg_.drop_after == 0 || served_[req.package()] < cfg_.drop_after) return false;
  dropped_download_ = req.download_id().empty() ? "-" : req.download_id();
  event("dropping download %s of %s after %llu bytes served (--drop-download-after)",
        dropped_download_.c_str(), req.package().c_str(),
        static_cast<unsigned long long>(served_[req.package()]));
  return true;
}

void PackageServer::serve(const std::string& vehicle, const std::string& payload) {
  v1::DownloadRequest req;
  Status st = codec::decode(payload, &req, codec::kMaxControlMessage, "DownloadRequest");
  if (st.is_ok()) st = codec::check_protocol(req.protocol(), "DownloadRequest");
  if (!st.is_ok() || !valid_name(req.request_id(), 64)) {
    // Without a valid request id there is no topic to answer on.
    event("download request from %s dropped: %s", vehicle.c_str(),
          st.is_ok() ? "request_id is not a valid topic segment" : st.to_string().c_str());
    return;
  }
  v1::DownloadChunk chunk;
  chunk.set_request_id(req.request_id());
  chunk.set_package(req.package());
  chunk.set_offset(req.offset());
  if (!valid_name(req.package(), 128)) {
    return refuse(vehicle, chunk,
                  make_error(Code::kInvalidArgument, "bad package name '" + req.package() + "'"));
  }
  FileReader* reader = open_package(req.package());
  if (reader == nullptr) {
    return refuse(vehicle, chunk, make_error(Code::kNotFound, "package '" + req.package() + "' not found"));
  }
  const uint64_t size = reader->size();
  chunk.set_total_size(size);
  if (req.length() == 0 || req.length() > codec::kMaxChunkSize) {
    return refuse(
        vehicle, chunk,
        make_error(Code::kInvalidArgument, "length " + std::to_string(req.length()) + " not in 1.." +
                                               std::to_string(codec::kMaxChunkSize)));
  }
  if (req.offset() >= size) {
    return refuse(vehicle, chunk,
                  make_error(Code::kInvalidArgument, "offset " + std::to_string(req.offset()) +
                                                         " is not below the size " + std::to_string(size)));
  }
  if (drop(req)) return;
  if (seen_downloads_.insert(req.download_id()).second) {
    if (seen_downloads_.size() > 10000) seen_downloads_.clear();
    event("download %s of %s by %s from offset %llu of %llu", req.download_id().c_str(),
          req.package().c_str(), vehicle.c_str(), static_cast<unsigned long long>(req.offset()),
          static_cast<unsigned long long>(size));
  }
  const size_t n = static_cast<size_t>(std::min<uint64_t>(req.length(), size - req.offset()));
  std::string* data = chunk.mutable_data();
  data->resize(n);
  st = reader->read_at(req.offset(), reinterpret_cast<uint8_t*>(&(*data)[0]), n);
  if (!st.is_ok()) {
    chunk.clear_data();
    return refuse(vehicle, chunk, st);
  }
  chunk.set_crc32c(crc32c(data->data(), n));
  chunk.set_last(req.offset() + n == size);
  served_[req.package()] += n;
  answer(vehicle, chunk);
  if (chunk.last()) {
    event("download %s of %s: served its last chunk", req.download_id().c_str(), req.package().c_str());
  }
}

FileReader* PackageServer::open_package(const std::string& name) {
  auto it = readers_.find(name);
  if (it != readers_.end()) return it->second.get();
  const std::string path = cfg_.packages + "/" + name;
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) return nullptr;
  auto r = FileReader::open(path);
  if (!r) return nullptr;
  if (readers_.size() > 64) readers_.clear();
  return (readers_[name] = std::move(r.value())).get();
}

}  // namespace ota::cloudsim
