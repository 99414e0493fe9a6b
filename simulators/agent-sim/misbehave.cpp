#include "misbehave.hpp"

#include <limits>
#include <mutex>
#include <thread>

#include "ota/core/log.hpp"
#include "ota/core/topics.hpp"
#include "ota/v1/ota.pb.h"

namespace ota::sim {
namespace {

constexpr const char* kLog = "misbehave";

class MisbehavingTransport : public Transport {
 public:
  MisbehavingTransport(std::unique_ptr<Transport> inner, Misbehaviour m, const std::string& ecu_id,
                       std::chrono::milliseconds delay)
      : inner_(std::move(inner)),
        m_(m),
        delay_(delay),
        ack_topic_(topics::ecu(ecu_id, topics::Leaf::kAck)),
        result_topic_(topics::ecu(ecu_id, topics::Leaf::kResult)),
        cmd_topic_(topics::ecu(ecu_id, topics::Leaf::kCmd)),
        data_topic_(topics::ecu(ecu_id, topics::Leaf::kData)) {}

  void on_message(MessageHandler handler) override {
    inner_->on_message([this, handler = std::move(handler)](TransportMessage&& m) {
      hear(m);
      handler(std::move(m));
    });
  }
  void on_connection(ConnectionHandler handler) override { inner_->on_connection(std::move(handler)); }
  Status connect(std::chrono::milliseconds timeout) override { return inner_->connect(timeout); }
  Status subscribe(const std::string& filter, int qos) override { return inner_->subscribe(filter, qos); }

  Status publish(const std::string& topic, const void* data, size_t n, int qos, bool retain) override {
    if (m_ == Misbehaviour::kSilent && (topic == ack_topic_ || topic == result_topic_)) return Status::ok();
    if (m_ == Misbehaviour::kSlowloris && topic == ack_topic_) std::this_thread::sleep_for(delay_);
    OTA_RETURN_IF_ERROR(inner_->publish(topic, data, n, qos, retain));
    if (m_ == Misbehaviour::kAbsurdAck && topic == result_topic_) follow_ready_with_absurd_ack(data, n);
    return Status::ok();
  }
  Status publish_owned(const std::string& topic, std::string&& buffer, size_t offset, int qos,
                       bool retain) override {
    if (offset > buffer.size()) return Status(Code::kInvalidArgument, "publish: offset past the buffer");
    return publish(topic, buffer.data() + offset, buffer.size() - offset, qos, retain);
  }
  Status flush(std::chrono::milliseconds timeout) override { return inner_->flush(timeout); }
  void disconnect(std::chrono::milliseconds timeout) override { inner_->disconnect(timeout); }
  bool connected() const override { return inner_->connected(); }

 private:
  // What arrives: a chunk to spoil, or the transfer id of a StartTransfer to remember.
  void hear(TransportMessage& m) {
    if (m_ == Misbehaviour::kCorruptAcks && m.topic == data_topic_ && !m.payload.empty()) {
      m.payload.back() = static_cast<char>(m.payload.back() ^ 0x5A);  // in Chunk.data, the last field
    } else if (m_ == Misbehaviour::kAbsurdAck && m.topic == cmd_topic_) {
      v1::Command cmd;
      if (cmd.ParseFromString(m.payload) && cmd.has_start_transfer()) {
        std::lock_guard<std::mutex> lock(mu_);
        transfer_id_ = cmd.start_transfer().transfer_id();
      }
    }
  }

  void follow_ready_with_absurd_ack(const void* data, size_t n) {
    v1::Result r;
    if (!r.ParseFromArray(data, static_cast<int>(n)) || !r.has_transfer_ready()) return;
    v1::ChunkAck ack;
    {
      std::lock_guard<std::mutex> lock(mu_);
      ack.set_transfer_id(transfer_id_);
    }
    ack.set_next_offset(std::numeric_limits<uint64_t>::max());
    ack.set_durable_offset(std::numeric_limits<uint64_t>::max());
    OTA_LOGW(kLog, "acknowledging byte 2^64-1 of %s before any chunk", ack.transfer_id().c_str());
    (void)inner_->publish(ack_topic_, ack.SerializeAsString(), 1, false);
  }

  std::unique_ptr<Transport> inner_;
  const Misbehaviour m_;
  const std::chrono::milliseconds delay_;
  const std::string ack_topic_, result_topic_, cmd_topic_, data_topic_;
  std::mutex mu_;
  std::string transfer_id_;
};

}  // namespace

const std::vector<std::string>& misbehaviour_names() {
  static const std::vector<std::string> names = {"none",        "slowloris", "corrupt-acks",
                                                 "tiny-chunks", "silent",    "absurd-ack"};
  return names;
}

Result<Misbehaviour> parse_misbehaviour(const std::string& name) {
  const auto& names = misbehaviour_names();
  for (size_t i = 0; i < names.size(); ++i) {
    if (names[i] == name) return static_cast<Misbehaviour>(i);
  }
  return Status(Code::kInvalidArgument, "unknown misbehaviour '" + name + "'");
}

std::unique_ptr<Transport> misbehaving_transport(std::unique_ptr<Transport> inner, Misbehaviour m,
                                                 const std::string& ecu_id, std::chrono::milliseconds delay) {
  if (m == Misbehaviour::kNone || m == Misbehaviour::kTinyChunks) return inner;
  return std::make_unique<MisbehavingTransport>(std::move(inner), m, ecu_id, delay);
}

}  // namespace ota::sim
