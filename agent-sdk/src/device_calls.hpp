// How the agent calls supplier code: every Device and BankWriter method runs through guarded(), so
// that an exception escaping it becomes a Status instead of crashing the agent.
#pragma once

#include <exception>
#include <memory>
#include <string>

#include "ota/agent.hpp"
#include "ota/core/status.hpp"

namespace ota::agent_impl {

using agent::Bank;
using agent::BankWriter;
using agent::Device;

template <typename F>
Status guarded(const char* what, F&& f) {
  try {
    return f();
  } catch (const std::exception& e) {
    return Status(Code::kInternal, std::string("device ") + what + " threw: " + e.what());
  } catch (...) {
    return Status(Code::kInternal, std::string("device ") + what + " threw an unknown exception");
  }
}

inline Status open_bank_reader(Device& dev, Bank bank, std::unique_ptr<RandomReader>* out) {
  return guarded("open_bank_reader", [&] {
    auto r = dev.open_bank_reader(bank);
    if (!r) return r.status();
    *out = std::move(*r);
    return Status::ok();
  });
}

inline Status open_bank_writer(Device& dev, Bank bank, uint64_t offset, std::unique_ptr<BankWriter>* out) {
  return guarded("open_bank_writer", [&] {
    auto r = dev.open_bank_writer(bank, offset);
    if (!r) return r.status();
    *out = std::move(*r);
    return Status::ok();
  });
}

}  // namespace ota::agent_impl
