#include "installer.hpp"

#include "device_calls.hpp"
#include "digests.hpp"
#include "ota/core/delta.hpp"
#include "ota/core/file.hpp"

namespace ota::agent_impl {

namespace {

class WriterSink : public ByteSink {
 public:
  explicit WriterSink(agent::BankWriter& w) : w_(w) {}
  Status write(const uint8_t* data, size_t n) override { return w_.write(data, n); }

 private:
  agent::BankWriter& w_;
};

// The first n bytes of a reader: the bank may be larger than the image in it, and the base of a
// delta is exactly the active image.
class BoundedReader : public RandomReader {
 public:
  BoundedReader(RandomReader& r, uint64_t n) : r_(r), n_(n) {}
  uint64_t size() const override { return n_; }
  Status read_at(uint64_t off, uint8_t* buf, size_t len) override {
    if (off > n_ || len > n_ - off) return Status(Code::kCorrupt, "read beyond the base image");
    return r_.read_at(off, buf, len);
  }

 private:
  RandomReader& r_;
  uint64_t n_;
};

}  // namespace

agent::ImageInfo image_info(const v1::Target& t) { return {t.version(), t.size(), hex_of_bytes(t.sha256())}; }

Status Installer::install() {
  OTA_RETURN_IF_ERROR(verify_payload());
  if (disk_.view().target().encoding() == v1::PAYLOAD_ENCODING_DELTA) OTA_RETURN_IF_ERROR(reconstruct());
  const agent::ImageInfo info = image_info(disk_.view().target());
  const Bank inactive = agent::other(active_bank_of(disk_.view()));
  return guarded("finish_install", [&] { return dev_.finish_install(inactive, info); });
}

Status Installer::verify_payload() {
  const v1::Target& t = disk_.view().target();
  const uint64_t durable = disk_.durable_offset();
  if (durable != t.payload_size()) {
    // NOT_FOUND tells the client to resume the transfer (e.g. the agent restarted after the last
    // chunk, before its checkpoint), then install again.
    return Status(Code::kNotFound, "transfer incomplete: " + std::to_string(durable) + " of " +
                                       std::to_string(t.payload_size()) + " bytes held durably");
  }
  auto digest = receiver_.payload_digest(t.payload_size());
  if (!digest) return digest.status();
  if (digest_bytes(*digest) != t.payload_sha256()) {
    return Status(Code::kHashMismatch, "payload SHA-256 " + to_hex(*digest) +
                                           " does not match the target's " +
                                           hex_of_bytes(t.payload_sha256()));
  }
  return Status::ok();
}

Status Installer::reconstruct() {
  const v1::Target& t = disk_.view().target();
  const Bank active = active_bank_of(disk_.view());
  std::unique_ptr<RandomReader> base;
  OTA_RETURN_IF_ERROR(open_bank_reader(dev_, active, &base));
  std::unique_ptr<agent::BankWriter> out;
  OTA_RETURN_IF_ERROR(open_bank_writer(dev_, agent::other(active), 0, &out));
  auto delta_file = FileReader::open(receiver_.staging_path());
  if (!delta_file) return delta_file.status();
  BoundedReader bounded(*base, bank_record(disk_.view(), active).size());
  WriterSink sink(*out);
  HashingSink hashing(&sink);
  OTA_RETURN_IF_ERROR(delta::apply_delta(bounded, **delta_file, hashing));
  OTA_RETURN_IF_ERROR(guarded("sync", [&] { return out->sync(); }));
  Digest d = hashing.finish();
  if (hashing.bytes() != t.size() || digest_bytes(d) != t.sha256()) {
    return Status(Code::kHashMismatch, "reconstructed image (" + std::to_string(hashing.bytes()) +
                                           " bytes, SHA-256 " + to_hex(d) + ") is not the target");
  }
  return Status::ok();
}

}  // namespace ota::agent_impl
