// transport_child: one Transport connected with a Last Will, for the transport tests' "ungraceful
// end" case (the test SIGKILLs it and expects the broker to publish the will).
//
//   transport_child URI USER PASSWORD_FILE ENGINE WILL_TOPIC WILL_PAYLOAD [ONLINE_PAYLOAD]
//
// ENGINE is native or paho. The will is QoS 1 and retained. With ONLINE_PAYLOAD the child first
// publishes it retained (QoS 1) on WILL_TOPIC and waits until the broker acknowledged it. Prints
// "ready" once connected (and published), then waits until it is killed. Exits 1 with the error
// on stderr if any step fails, 2 on bad arguments.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "ota/core/transport.hpp"

namespace {

[[noreturn]] void fail(const std::string& what, const ota::Status& st) {
  std::fprintf(stderr, "transport_child: %s: %s\n", what.c_str(), st.to_string().c_str());
  std::exit(1);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 7 || argc > 8) {
    std::fprintf(stderr,
                 "usage: transport_child URI USER PASSWORD_FILE native|paho WILL_TOPIC WILL_PAYLOAD "
                 "[ONLINE_PAYLOAD]\n");
    return 2;
  }
  const std::string engine = argv[4];
  if (engine != "native" && engine != "paho") {
    std::fprintf(stderr, "transport_child: unknown engine %s\n", engine.c_str());
    return 2;
  }
  auto password = ota::read_password_file(argv[3]);
  if (!password) fail("password file", password.status());

  ota::TransportOptions options;
  options.uri = argv[1];
  options.client = engine == "native" ? ota::MqttClient::kNative : ota::MqttClient::kPaho;
  options.client_id = std::string("transport-child-") + argv[2] + "-" + std::to_string(::getpid());
  options.username = argv[2];
  options.password = password.value();
  options.will = ota::WillMessage{argv[5], argv[6], 1, true};
  std::unique_ptr<ota::Transport> transport =
      engine == "native" ? ota::make_native_transport(options) : ota::make_paho_transport(options);
  if (auto st = transport->connect(std::chrono::seconds(5)); !st) fail("connect", st);
  if (argc == 8) {
    if (auto st = transport->publish(argv[5], std::string(argv[7]), 1, true); !st) fail("publish", st);
    if (auto st = transport->flush(std::chrono::seconds(5)); !st) fail("flush", st);
  }
  std::printf("ready\n");
  std::fflush(stdout);
  while (true) ::pause();
}
