// make_transport: which MQTT client carries a connection. The native client is the default for
// MQTT 3.1.1 over plain TCP (the data path); Paho carries what the native one does not speak (ssl://,
// MQTT 5). OTA_MQTT_CLIENT=paho|native in the environment overrides an automatic choice, for
// comparisons (bench/transfer); options.client set to a client is never overridden.
#include <cstdlib>
#include <cstring>

#include "native/endpoint.hpp"
#include "ota/core/log.hpp"
#include "ota/core/transport.hpp"

namespace ota {

MqttClient resolve_mqtt_client(const TransportOptions& options) {
  if (options.client != MqttClient::kAuto) return options.client;
  if (const char* env = std::getenv("OTA_MQTT_CLIENT")) {
    if (std::strcmp(env, "paho") == 0) return MqttClient::kPaho;
    if (std::strcmp(env, "native") == 0 && !options.mqtt_v5 && !options.tls) return MqttClient::kNative;
  }
  const bool plain = native::plain_scheme_length(options.uri) > 0;
  return (plain && !options.mqtt_v5 && !options.tls) ? MqttClient::kNative : MqttClient::kPaho;
}

const char* mqtt_client_name(MqttClient client) {
  switch (client) {
    case MqttClient::kNative:
      return "native";
    case MqttClient::kPaho:
      return "paho";
    case MqttClient::kAuto:
      return "auto";
  }
  return "auto";
}

std::unique_ptr<Transport> make_transport(TransportOptions options) {
  const MqttClient client = resolve_mqtt_client(options);
  OTA_LOGI("mqtt", "%s: MQTT client %s for %s", options.client_id.c_str(), mqtt_client_name(client),
           options.uri.c_str());
  return client == MqttClient::kNative ? make_native_transport(std::move(options))
                                       : make_paho_transport(std::move(options));
}

}  // namespace ota
