// FrozenBroker: a Mosquitto of the harness (ota::sim::Broker) that stops answering for one scope,
// to test how a client notices a broker that is silent while its connections stay open.
//
//   ota::test::FrozenBroker frozen(broker());  // SIGSTOP now, SIGCONT at the end of the scope
#pragma once

#include <signal.h>

#include <catch2/catch.hpp>

#include "ota/sim/broker.hpp"
#include "ota/sim/process.hpp"

namespace ota::test {

// Stops the broker answering (SIGSTOP): its sockets stay open but nothing is read or sent. The
// destructor lets it run again (SIGCONT), whatever happened in between.
class FrozenBroker {
 public:
  explicit FrozenBroker(sim::Broker& broker) : process_(broker.process()) {
    REQUIRE(process_ != nullptr);
    auto st = process_->send_signal(SIGSTOP);
    INFO(st.to_string());
    REQUIRE(st.is_ok());
  }
  FrozenBroker(const FrozenBroker&) = delete;
  FrozenBroker& operator=(const FrozenBroker&) = delete;
  ~FrozenBroker() { thaw(); }
  void thaw() {
    if (process_ != nullptr) (void)process_->send_signal(SIGCONT);
    process_ = nullptr;
  }

 private:
  sim::ChildProcess* process_;
};

}  // namespace ota::test
