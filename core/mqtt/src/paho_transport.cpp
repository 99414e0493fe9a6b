// PahoTransport: the Transport seam over Eclipse Paho MQTT C++ (async client), for what the native
// client does not speak: ssl:// and MQTT 5.
#include <mqtt/async_client.h>

#include "mqtt_wire.hpp"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>
#include <mutex>

#include "ota/core/log.hpp"
#include "ota/core/transport.hpp"

namespace ota {
namespace {

constexpr const char* kLog = "mqtt";

Status status_from_exception(const ::mqtt::exception& e, const std::string& what) {
  const int rc = e.get_return_code();
  const int reason = e.get_reason_code();
  for (int code : {rc, reason}) {
    if (ota::mqtt::connect_refusal_is_final(code)) return ota::mqtt::connect_refused(code, what);
  }
  return Status(Code::kUnavailable, what + ": " + e.what());
}

int uri_port(const std::string& uri) {
  auto colon = uri.rfind(':');
  if (colon == std::string::npos) return 0;
  return std::atoi(uri.c_str() + colon + 1);
}

// Paho never sets TCP_NODELAY, so Nagle holds back a small packet (an ack, a PUBACK) until the
// previous one is acknowledged: with a small flow-control window that is most of the latency
// (bench/transfer/PROFILE.md). Paho does not expose its socket either, so after every connect
// this finds the process's TCP sockets whose peer is the broker's port and sets the option.
void set_nodelay_towards(int port) {
  if (port <= 0) return;
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) return;
  while (dirent* ent = ::readdir(dir)) {
    int fd = std::atoi(ent->d_name);
    if (fd <= 2) continue;
    struct stat sb {};
    if (::fstat(fd, &sb) != 0 || !S_ISSOCK(sb.st_mode)) continue;
    sockaddr_storage peer{};
    socklen_t len = sizeof peer;
    if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len) != 0) continue;
    int peer_port = 0;
    if (peer.ss_family == AF_INET) peer_port = ntohs(reinterpret_cast<sockaddr_in*>(&peer)->sin_port);
    if (peer.ss_family == AF_INET6) peer_port = ntohs(reinterpret_cast<sockaddr_in6*>(&peer)->sin6_port);
    if (peer_port != port) continue;
    int one = 1;
    (void)::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  ::closedir(dir);
}

// Paho C++ builds every arrived message with a payload string of its own (a fresh non-const
// std::string behind a shared pointer), hands the message to the callback and drops it afterwards.
// Moving the bytes out saves a copy of every chunk (up to 512 KiB) on the agents' hot path; a
// payload something else still shares is copied instead.
std::string take_payload(const ::mqtt::message& msg) {
  const ::mqtt::binary_ref& ref = msg.get_payload_ref();
  if (!ref) return std::string();
  if (ref.ptr().use_count() != 1) return ref.str();
  return std::move(const_cast<std::string&>(ref.str()));
}

class PahoTransport : public Transport {
 public:
  explicit PahoTransport(TransportOptions options) : options_(std::move(options)) {
    ::mqtt::create_options create(options_.mqtt_v5 ? MQTTVERSION_5 : MQTTVERSION_3_1_1,
                                  options_.offline_buffer);
    create.set_send_while_disconnected(true);
    client_ = std::make_unique<::mqtt::async_client>(options_.uri, options_.client_id, create, nullptr);
    client_->set_message_callback([this](::mqtt::const_message_ptr msg) {
      if (!message_handler_) return;
      TransportMessage m{msg->get_topic(), take_payload(*msg), msg->is_retained()};
      message_handler_(std::move(m));
    });
    client_->set_connected_handler([this](const std::string&) { on_connected(); });
    client_->set_connection_lost_handler([this](const std::string& cause) {
      OTA_LOGW(kLog, "%s: connection lost%s%s", options_.client_id.c_str(), cause.empty() ? "" : ": ",
               cause.c_str());
      if (connection_handler_) connection_handler_(false);
    });
  }

  ~PahoTransport() override {
    try {
      if (client_->is_connected()) client_->disconnect()->wait_for(std::chrono::seconds(2));
    } catch (const std::exception&) {
    }
  }

  void on_message(MessageHandler handler) override { message_handler_ = std::move(handler); }
  void on_connection(ConnectionHandler handler) override { connection_handler_ = std::move(handler); }

  Status connect(std::chrono::milliseconds timeout) override {
    ::mqtt::connect_options opts;
    opts.set_keep_alive_interval(static_cast<int>(options_.keepalive.count()));
    if (options_.mqtt_v5) {
      opts.set_mqtt_version(MQTTVERSION_5);
      opts.set_clean_start(true);
    } else {
      opts.set_clean_session(true);
    }
    if (!options_.username.empty()) opts.set_user_name(options_.username);
    if (!options_.password.empty()) opts.set_password(options_.password);
    opts.set_automatic_reconnect(std::max<int>(1, static_cast<int>(options_.reconnect_min.count() / 1000)),
                                 std::max<int>(1, static_cast<int>(options_.reconnect_max.count() / 1000)));
    opts.set_max_inflight(256);
    opts.set_connect_timeout(std::chrono::duration_cast<std::chrono::seconds>(timeout) +
                             std::chrono::seconds(1));
    if (options_.will) {
      ::mqtt::will_options will(options_.will->topic, options_.will->payload.data(),
                                options_.will->payload.size(), options_.will->qos, options_.will->retain);
      opts.set_will(will);
    }
    if (options_.tls) {
      ::mqtt::ssl_options ssl;
      ssl.set_trust_store(options_.tls->ca_file);
      if (!options_.tls->cert_file.empty()) ssl.set_key_store(options_.tls->cert_file);
      if (!options_.tls->key_file.empty()) ssl.set_private_key(options_.tls->key_file);
      ssl.set_enable_server_cert_auth(true);
      ssl.set_verify(true);
      opts.set_ssl(ssl);
    }
    try {
      auto tok = client_->connect(opts);
      if (!tok->wait_for(timeout))
        return Status(Code::kTimeout, "connect to " + options_.uri + ": no CONNACK in time");
    } catch (const ::mqtt::exception& e) {
      return status_from_exception(e, "connect to " + options_.uri + " as " + options_.username);
    }
    return Status::ok();
  }

  Status subscribe(const std::string& filter, int qos) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      subscriptions_.emplace_back(filter, qos);
    }
    try {
      auto tok = client_->subscribe(filter, qos);
      if (!tok->wait_for(std::chrono::seconds(10))) return Status(Code::kTimeout, "subscribe " + filter);
      // A broker answers 0x80 (failure) when it refuses the filter (Mosquitto 2.0 with its
      // dynamic-security plugin does; with an ACL file it grants and filters at delivery).
      const ::mqtt::subscribe_response resp = tok->get_subscribe_response();
      const std::vector<::mqtt::ReasonCode> codes = resp.get_reason_codes();
      for (auto rc : codes) {
        if (rc >= 0x80) return Status(Code::kRejected, "subscribe " + filter + ": refused by broker");
      }
    } catch (const ::mqtt::exception& e) {
      // Over MQTT 3.1.1 Paho throws on a refusing SUBACK (return code 0x80) rather than handing it back.
      if (e.get_return_code() >= 0x80 || e.get_reason_code() >= 0x80) {
        const int code = e.get_reason_code() >= 0x80 ? e.get_reason_code() : e.get_return_code();
        return Status(Code::kRejected, "subscribe " + filter + ": refused by broker (" +
                                           ota::mqtt::connack_reason(code) + ", code " +
                                           std::to_string(code) + ")");
      }
      return status_from_exception(e, "subscribe " + filter);
    }
    return Status::ok();
  }

  Status publish(const std::string& topic, const void* data, size_t n, int qos, bool retain) override {
    try {
      client_->publish(topic, data, n, qos, retain);
    } catch (const ::mqtt::exception& e) {
      return Status(Code::kUnavailable, "publish " + topic + ": " + e.what());
    }
    return Status::ok();
  }

  Status flush(std::chrono::milliseconds timeout) override {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (auto& tok : client_->get_pending_delivery_tokens()) {
      auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      try {
        if (left.count() <= 0 || !tok->wait_for(left))
          return Status(Code::kTimeout, "flush: deliveries pending");
      } catch (const ::mqtt::exception& e) {
        return Status(Code::kUnavailable, std::string("flush: ") + e.what());
      }
    }
    return Status::ok();
  }

  void disconnect(std::chrono::milliseconds timeout) override {
    try {
      if (client_->is_connected()) client_->disconnect()->wait_for(timeout);
    } catch (const ::mqtt::exception& e) {
      OTA_LOGW(kLog, "%s: disconnect: %s", options_.client_id.c_str(), e.what());
    }
  }

  bool connected() const override { return client_->is_connected(); }

 private:
  // Runs on Paho's callback thread after every (re)connect. Waiting for a SUBACK here would deadlock
  // the thread that delivers it, so subscriptions are restored asynchronously and in order; MQTT
  // processes a connection's packets in order, so later publishes see them in place.
  void on_connected() {
    set_nodelay_towards(uri_port(options_.uri));
    std::vector<std::pair<std::string, int>> subs;
    {
      std::lock_guard<std::mutex> lock(mu_);
      subs = subscriptions_;
    }
    for (const auto& [filter, qos] : subs) {
      try {
        client_->subscribe(filter, qos);
      } catch (const ::mqtt::exception& e) {
        OTA_LOGE(kLog, "%s: resubscribe %s: %s", options_.client_id.c_str(), filter.c_str(), e.what());
      }
    }
    if (connection_handler_) connection_handler_(true);
  }

  TransportOptions options_;
  std::unique_ptr<::mqtt::async_client> client_;
  MessageHandler message_handler_;
  ConnectionHandler connection_handler_;
  std::mutex mu_;
  std::vector<std::pair<std::string, int>> subscriptions_;
};

}  // namespace

std::unique_ptr<Transport> make_paho_transport(TransportOptions options) {
  return std::make_unique<PahoTransport>(std::move(options));
}

}  // namespace ota
