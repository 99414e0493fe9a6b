#include "installer.hpp"

#include "device_calls.hpp"
#include "digests.hpp"
#include "ota/core/delta.hpp"
#include "ota/core/file.hpp"
#include "ota/core/trust.hpp"

namespace ota::agent_impl {

namespace {

class WriterSink : public ByteSink {
 public:
  explicit WriterSink(agent::BankWriter& w) : w_(w) {}
  Status write(const uint8_t* data, size_t n) override { return w_.write(data, n); }

 private:
  agent::BankWriter& w_;
};

// Takes at most `limit` bytes: a delta's reconstruction never writes past the signed image size,
// whatever the delta says (the bytes beyond would land in the bank, after the image).
class BoundedSink : public ByteSink {
 public:
  BoundedSink(ByteSink& out, uint64_t limit) : out_(out), limit_(limit) {}
  Status write(const uint8_t* data, size_t n) override {
    if (n > limit_ - written_) {
      return Status(Code::kCorrupt, "the delta reconstructs more than the signed image size of " +
                                        std::to_string(limit_) + " bytes; stopped before writing past it");
    }
    written_ += n;
    return out_.write(data, n);
  }

 private:
  ByteSink& out_;
  const uint64_t limit_;
  uint64_t written_ = 0;
};

// What the held target promises, in the trust layer's terms: its checks are the ones that run.
trust::PayloadInfo signed_payload(const v1::Target& t) {
  trust::PayloadInfo p;
  (void)digest_from_bytes(t.payload_sha256(), &p.sha256);  // 32 bytes: checked at StartTransfer
  p.size = t.payload_size();
  return p;
}

trust::CampaignTarget signed_image(const std::string& ecu_id, const v1::Target& t) {
  trust::CampaignTarget out;
  out.ecu_id = ecu_id;
  out.version = t.version();
  out.size = t.size();
  (void)digest_from_bytes(t.sha256(), &out.sha256);
  return out;
}

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
  return trust::check_payload(signed_payload(t), *digest, durable, "target " + t.version());
}

Status Installer::reconstruct() {
  const v1::Target& t = disk_.view().target();
  const Bank active = active_bank_of(disk_.view());
  std::unique_ptr<RandomReader> base;
  OTA_RETURN_IF_ERROR(open_bank_reader(dev_, active, &base));
  std::unique_ptr<agent::BankWriter> out;
  OTA_RETURN_IF_ERROR(open_bank_writer(dev_, agent::other(active), 0, &out));
  auto delta_file = FileReader::open(receiver_.staging_path(), Links::kRefuse);
  if (!delta_file) return delta_file.status();
  BoundedReader bounded(*base, bank_record(disk_.view(), active).size());
  WriterSink sink(*out);
  BoundedSink bounded_out(sink, t.size());
  HashingSink hashing(&bounded_out);
  OTA_RETURN_IF_ERROR(delta::apply_delta(bounded, **delta_file, hashing));
  OTA_RETURN_IF_ERROR(guarded("sync", [&] { return out->sync(); }));
  const uint64_t written = hashing.bytes();
  return trust::check_installed(signed_image(ecu_id_, t), hashing.finish(), written);
}

}  // namespace ota::agent_impl
