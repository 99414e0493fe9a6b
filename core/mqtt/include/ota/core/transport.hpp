// The message transport seam between the client, the agents and the broker. Two MQTT clients sit
// behind it: a native MQTT 3.1.1 client over a TCP socket (core/mqtt/src/native/), lean on the data
// path (one copy per received payload, one write per sent packet), and Eclipse Paho MQTT C++
// (core/mqtt/src/paho_transport.cpp) for MQTT 5 and TLS. make_transport (core/mqtt/src/factory.cpp)
// picks one. Nothing else in core includes Paho.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ota/core/status.hpp"

namespace ota {

struct TransportMessage {
  std::string topic;
  std::string payload;
  bool retained = false;
};

struct WillMessage {
  std::string topic;
  std::string payload;
  int qos = 1;
  bool retain = true;
};

struct TlsOptions {
  std::string ca_file;    // PEM; the server's certificate must chain to it and match the host
  std::string cert_file;  // client certificate (PEM), optional
  std::string key_file;   // client private key (PEM), optional
};

// Which MQTT client carries a connection.
enum class MqttClient {
  kAuto,    // native for MQTT 3.1.1 over tcp://, Paho otherwise (MQTT 5, ssl://); the environment
            // variable OTA_MQTT_CLIENT=paho|native overrides it for comparisons
  kNative,  // MQTT 3.1.1 over tcp:// only
  kPaho,
};

// "native", "paho" or "auto": for logs (resolve_mqtt_client first to name the one in use).
const char* mqtt_client_name(MqttClient client);

struct TransportOptions {
  std::string uri;  // "tcp://127.0.0.1:1883" or "ssl://host:8883"
  MqttClient client = MqttClient::kAuto;
  std::string client_id;  // unique per broker
  std::string username;
  std::string password;
  std::optional<WillMessage> will;
  std::optional<TlsOptions> tls;  // required when uri starts with ssl://
  bool mqtt_v5 = false;
  std::chrono::seconds keepalive{10};
  // Reconnect with backoff between these bounds after a lost connection.
  std::chrono::milliseconds reconnect_min{100};
  std::chrono::milliseconds reconnect_max{4000};
  // Messages published while disconnected are buffered up to this count (then publish fails).
  int offline_buffer = 1000;
};

// Callbacks run on the transport's own thread, one at a time, in arrival order. They must not block
// for long (a blocked callback stalls every message of this connection) and must not throw.
class Transport {
 public:
  // The message is handed over (moved): a handler may keep it without copying the payload.
  using MessageHandler = std::function<void(TransportMessage&&)>;
  // Called with true after every (re)connect, after subscriptions are restored; false on loss.
  using ConnectionHandler = std::function<void(bool connected)>;

  virtual ~Transport() = default;
  // Set before connect(); not thread-safe with respect to message delivery.
  virtual void on_message(MessageHandler handler) = 0;
  virtual void on_connection(ConnectionHandler handler) = 0;

  // Connects and waits for the CONNACK. Errors: kUnavailable (unreachable), kRejected (refused:
  // bad credentials / not authorised) with the broker's reason.
  virtual Status connect(std::chrono::milliseconds timeout) = 0;
  // Subscribes now and again after every reconnect. Waits for the SUBACK: kRejected when the broker
  // refuses the filter (0x80). Mosquitto with an ACL file grants every filter and applies the ACL
  // to each message delivered, so there a forbidden filter is granted and receives nothing.
  virtual Status subscribe(const std::string& filter, int qos) = 0;
  // Queues a message; does not wait for delivery. Thread-safe, callable from callbacks.
  virtual Status publish(const std::string& topic, const void* data, size_t n, int qos, bool retain) = 0;
  Status publish(const std::string& topic, const std::string& payload, int qos, bool retain) {
    return publish(topic, payload.data(), payload.size(), qos, retain);
  }
  // The same, taking the buffer over: the message is buffer[offset..]; the bytes before offset are
  // the caller's scratch. The native client sends and keeps it without copying (the data path's
  // chunks); the default copies.
  virtual Status publish_owned(const std::string& topic, std::string&& buffer, size_t offset, int qos,
                               bool retain) {
    if (offset > buffer.size())
      return Status(Code::kInvalidArgument, "publish " + topic + ": offset past the buffer");
    return publish(topic, buffer.data() + offset, buffer.size() - offset, qos, retain);
  }
  // Waits until every publish queued so far has been handed to the broker (QoS>0: acknowledged).
  virtual Status flush(std::chrono::milliseconds timeout) = 0;
  // Orderly disconnect: the Last Will is not sent.
  virtual void disconnect(std::chrono::milliseconds timeout) = 0;
  virtual bool connected() const = 0;
};

// The transport for these options (see MqttClient). Never null; errors surface at connect().
std::unique_ptr<Transport> make_transport(TransportOptions options);
// The client make_transport picks for these options.
MqttClient resolve_mqtt_client(const TransportOptions& options);
// The two implementations, for tests and benchmarks that compare them.
std::unique_ptr<Transport> make_paho_transport(TransportOptions options);
std::unique_ptr<Transport> make_native_transport(TransportOptions options);

// Reads a password from a file (first line, trailing newline stripped), as broker-config/render writes.
Result<std::string> read_password_file(const std::string& path);

}  // namespace ota
