#include "config.hpp"

#include <toml++/toml.h>

#include <algorithm>
#include <sstream>
#include <type_traits>
#include <variant>

#include "ota/core/file.hpp"
#include "ota/core/topics.hpp"

namespace ota::client {
namespace {

// What a key's value must satisfy beyond its type. `check` returns an empty string for a valid
// string (or array item), else what is wrong with it.
struct Rule {
  int64_t min = 0;
  int64_t max = 0;
  size_t max_items = 0;
  std::string (*check)(std::string_view) = nullptr;
};

Rule any() { return Rule{}; }
Rule text(std::string (*check)(std::string_view)) { return Rule{0, 0, 0, check}; }
Rule range(int64_t min, int64_t max) { return Rule{min, max, 0, nullptr}; }
Rule items(size_t max_items, std::string (*check)(std::string_view)) { return Rule{0, 0, max_items, check}; }

std::string not_empty(std::string_view s) { return s.empty() ? "must not be empty" : ""; }

std::string ecu_id(std::string_view s) {
  if (topics::valid_ecu_id(s)) return "";
  return "'" + std::string(s) + "' is not an ECU id (" + topics::kEcuIdRule + ")";
}

std::string consent_answer(std::string_view s) {
  auto step = parse_consent_step(s);
  return step ? "" : step.status().message();
}

// THE schema: every section and key, in the order they are documented and written, with their
// rules. Defaults are the member initialisers of ClientConfig.
template <class Config, class Visit>
void for_each_key(Config& c, Visit&& visit) {
  visit("vehicle", "vin", c.vehicle.vin, any());
  visit("vehicle", "ecus", c.vehicle.ecus, items(kMaxConfigEcus, ecu_id));
  visit("broker", "uri", c.broker.uri, text(not_empty));
  visit("broker", "username", c.broker.username, text(not_empty));
  visit("broker", "password_file", c.broker.password_file, any());
  visit("broker", "tls_ca", c.broker.tls_ca, any());
  visit("broker", "tls_cert", c.broker.tls_cert, any());
  visit("broker", "tls_key", c.broker.tls_key, any());
  visit("state", "dir", c.state.dir, text(not_empty));
  visit("conditions", "file", c.conditions.file, any());
  visit("report", "file", c.report.file, any());
  visit("campaign", "file", c.campaign.file, any());
  visit("consent", "answers", c.consent.answers, items(kMaxConsentAnswers, consent_answer));
  visit("timeouts", "agent_ms", c.timeouts.agent_ms, range(1, kMaxTimeoutMs));
  visit("timeouts", "stall_ms", c.timeouts.stall_ms, range(1, kMaxTimeoutMs));
  visit("timeouts", "campaign_ms", c.timeouts.campaign_ms, range(0, kMaxCampaignMs));
  visit("transfer", "min_rate", c.transfer.min_rate, range(1, kMaxMinRate));
  visit("transfer", "rate_window_ms", c.transfer.rate_window_ms, range(1000, kMaxTimeoutMs));
  visit("trust", "root", c.trust.root, any());
  visit("trust", "dir", c.trust.dir, any());
  visit("trust", "allow_unsigned", c.trust.allow_unsigned, any());
  visit("trust", "ecu_keys", c.trust.ecu_keys, any());
  visit("cloud", "uri", c.cloud.uri, any());
  visit("cloud", "ca", c.cloud.ca, any());
  visit("cloud", "cert", c.cloud.cert, any());
  visit("cloud", "key", c.cloud.key, any());
  visit("cloud", "vehicle", c.cloud.vehicle, text(not_empty));
}

using Strings = std::vector<std::string>;
template <bool kConst>
struct Field {
  template <class T>
  using Ptr = std::conditional_t<kConst, const T*, T*>;
  const char* section;
  const char* key;
  std::variant<Ptr<std::string>, Ptr<bool>, Ptr<int64_t>, Ptr<Strings>> value;
  Rule rule;
};

template <class Config, bool kConst = std::is_const_v<Config>>
std::vector<Field<kConst>> fields(Config& c) {
  std::vector<Field<kConst>> out;
  for_each_key(c, [&out](const char* section, const char* key, auto& value, Rule rule) {
    out.push_back(Field<kConst>{section, key, &value, rule});
  });
  return out;
}

std::vector<std::string> sections() {
  const ClientConfig defaults;
  std::vector<std::string> out;
  for (const auto& f : fields(defaults)) {
    if (std::find(out.begin(), out.end(), f.section) == out.end()) out.emplace_back(f.section);
  }
  return out;
}

// ---- reading ----

const char* type_name(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a floating-point number";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::date:
      return "a date";
    case toml::node_type::time:
      return "a time";
    case toml::node_type::date_time:
      return "a date-time";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::table:
      return "a table";
    default:
      return "nothing";
  }
}

// The first error in the file (by line), whatever order the checks ran in.
class Errors {
 public:
  explicit Errors(const std::string& origin) : origin_(origin) {}
  void add(const toml::source_region& where, const std::string& what) {
    const uint32_t line = where.begin.line;
    if (first_.empty() || line < line_) {
      line_ = line;
      first_ = origin_ + ":" + std::to_string(line) + ": " + what;
    }
  }
  Status status() const { return first_.empty() ? Status::ok() : Status(Code::kInvalidArgument, first_); }

 private:
  const std::string& origin_;
  uint32_t line_ = 0;
  std::string first_;
};

// Edit distance, for "did you mean" on a misspelt key or section.
size_t distance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

std::string suggest(std::string_view name, const std::vector<std::string>& known) {
  for (const auto& k : known) {
    if (distance(name, k) <= 2) return " (did you mean " + k + "?)";
  }
  return "";
}

std::vector<std::string> keys_of(const std::string& section) {
  const ClientConfig defaults;
  std::vector<std::string> out;
  for (const auto& f : fields(defaults)) {
    if (section == f.section) out.emplace_back(f.key);
  }
  return out;
}

// Unknown sections and keys, and sections that are not tables.
void check_names(const toml::table& root, Errors& errors) {
  const auto known = sections();
  for (const auto& [name, node] : root) {
    const std::string section(name.str());
    if (std::find(known.begin(), known.end(), section) == known.end()) {
      errors.add(name.source(), (node.is_table() ? "unknown section [" + section + "]"
                                                 : "unknown key '" + section + "' outside any section") +
                                    suggest(section, known));
      continue;
    }
    const toml::table* table = node.as_table();
    if (!table) {
      errors.add(node.source(), section + ": expected a table, got " + type_name(node));
      continue;
    }
    const auto keys = keys_of(section);
    for (const auto& [key, value] : *table) {
      if (std::find(keys.begin(), keys.end(), key.str()) == keys.end()) {
        errors.add(key.source(),
                   "unknown key " + section + "." + std::string(key.str()) + suggest(key.str(), keys));
      }
    }
  }
}

void check_text(const toml::node& n, const std::string& name, std::string_view value, const Rule& rule,
                Errors& errors) {
  if (!rule.check) return;
  if (std::string problem = rule.check(value); !problem.empty())
    errors.add(n.source(), name + ": " + problem);
}

void read_value(const toml::node& n, const std::string& name, const Rule& rule, std::string* out,
                Errors& errors) {
  const auto* s = n.as_string();
  if (!s) return errors.add(n.source(), name + ": expected a string, got " + type_name(n));
  check_text(n, name, s->get(), rule, errors);
  *out = s->get();
}

void read_value(const toml::node& n, const std::string& name, const Rule&, bool* out, Errors& errors) {
  const auto* b = n.as_boolean();
  if (!b) return errors.add(n.source(), name + ": expected a boolean, got " + type_name(n));
  *out = b->get();
}

void read_value(const toml::node& n, const std::string& name, const Rule& rule, int64_t* out,
                Errors& errors) {
  const auto* i = n.as_integer();
  if (!i) return errors.add(n.source(), name + ": expected an integer, got " + type_name(n));
  if (i->get() < rule.min || i->get() > rule.max) {
    return errors.add(n.source(), name + ": " + std::to_string(i->get()) + " is out of range (" +
                                      std::to_string(rule.min) + " to " + std::to_string(rule.max) + ")");
  }
  *out = i->get();
}

void read_value(const toml::node& n, const std::string& name, const Rule& rule, Strings* out,
                Errors& errors) {
  const auto* a = n.as_array();
  if (!a) return errors.add(n.source(), name + ": expected an array of strings, got " + type_name(n));
  if (a->size() > rule.max_items) {
    return errors.add(n.source(), name + ": " + std::to_string(a->size()) + " items, at most " +
                                      std::to_string(rule.max_items));
  }
  Strings values;
  for (size_t i = 0; i < a->size(); ++i) {
    const toml::node& item = *a->get(i);
    const std::string item_name = name + "[" + std::to_string(i) + "]";
    const auto* s = item.as_string();
    if (!s) return errors.add(item.source(), item_name + ": expected a string, got " + type_name(item));
    check_text(item, item_name, s->get(), rule, errors);
    values.push_back(s->get());
  }
  *out = std::move(values);
}

// ---- writing ----

constexpr auto kFormat = toml::format_flags::allow_unicode_strings;

template <class T>
std::string toml_line(const char* key, const T& value) {
  toml::table t;
  if constexpr (std::is_same_v<T, Strings>) {
    toml::array a;
    for (const auto& s : value) a.push_back(s);
    t.insert(key, std::move(a));
  } else {
    t.insert(key, value);
  }
  std::ostringstream out;
  out << toml::toml_formatter(t, kFormat);
  return out.str();
}

// A string or list is "not set" when it is empty and its default is empty too.
template <class T>
bool is_unset(const T& value, const T& default_value) {
  if constexpr (std::is_same_v<T, std::string> || std::is_same_v<T, Strings>) {
    return value.empty() && default_value.empty();
  } else {
    return false;
  }
}

template <class T>
std::string key_text(const char* key, const T& value, const T& default_value, bool complete) {
  if (is_unset(value, default_value)) return complete ? std::string("# ") + key + " is not set\n" : "";
  if (!complete && value == default_value) return "";
  return toml_line(key, value) + "\n";
}

const char* type_of(const Field<true>& f) {
  switch (f.value.index()) {
    case 0:
      return "string";
    case 1:
      return "boolean";
    case 2:
      return "integer";
    default:
      return "array of strings";
  }
}

}  // namespace

std::string ClientConfig::trust_dir() const { return trust.dir.empty() ? state.dir + "/trust" : trust.dir; }

bool operator==(const ClientConfig& a, const ClientConfig& b) {
  const auto fa = fields(a), fb = fields(b);
  for (size_t i = 0; i < fa.size(); ++i) {
    const bool same =
        std::visit([&](auto* va) { return *va == *std::get<decltype(va)>(fb[i].value); }, fa[i].value);
    if (!same) return false;
  }
  return true;
}

Result<ClientConfig> parse_client_config(std::string_view text, const std::string& origin) {
  toml::table root;
  try {
    root = toml::parse(text, std::string_view(origin));
  } catch (const toml::parse_error& e) {
    return Status(Code::kInvalidArgument,
                  origin + ":" + std::to_string(e.source().begin.line) + ": " + std::string(e.description()));
  }
  Errors errors(origin);
  check_names(root, errors);
  ClientConfig config;
  for (auto& f : fields(config)) {
    const toml::node* n = root[f.section][f.key].node();
    if (!n) continue;
    const std::string name = std::string(f.section) + "." + f.key;
    std::visit([&](auto* out) { read_value(*n, name, f.rule, out, errors); }, f.value);
  }
  OTA_RETURN_IF_ERROR(errors.status());
  return config;
}

Result<ClientConfig> load_client_config(const std::string& path) {
  auto text = read_small_file(path, kMaxConfigBytes);
  if (!text) return text.status().with_context(path);
  return parse_client_config(*text, path);
}

std::string to_toml(const ClientConfig& config, bool complete) {
  const ClientConfig defaults;
  const auto values = fields(config), initial = fields(defaults);
  std::string out;
  for (const auto& section : sections()) {
    std::string body;
    for (size_t i = 0; i < values.size(); ++i) {
      if (section != values[i].section) continue;
      std::visit(
          [&](auto* v) {
            body += key_text(values[i].key, *v, *std::get<decltype(v)>(initial[i].value), complete);
          },
          values[i].value);
    }
    if (!body.empty()) out += "[" + section + "]\n" + body;
  }
  return out;
}

std::vector<ConfigKey> client_config_schema() {
  const ClientConfig defaults;
  std::vector<ConfigKey> out;
  for (const auto& f : fields(defaults)) {
    ConfigKey k{f.section, f.key, type_of(f), ""};
    std::visit(
        [&](auto* v) {
          if (!is_unset(*v, *v)) {
            std::string line = toml_line(f.key, *v);
            k.default_value = line.substr(line.find(" = ") + 3);
          }
        },
        f.value);
    out.push_back(std::move(k));
  }
  return out;
}

Result<ConsentStep> parse_consent_step(std::string_view text) {
  ConsentStep step;
  if (text == "accept") return step;
  if (text == "decline") {
    step.kind = ConsentStep::kDecline;
    return step;
  }
  constexpr std::string_view kPostpone = "postpone:";
  const std::string_view ms = text.substr(std::min(text.size(), kPostpone.size()));
  if (text.substr(0, kPostpone.size()) == kPostpone && !ms.empty() && ms.size() <= 10 &&
      std::all_of(ms.begin(), ms.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    const int64_t n = std::stoll(std::string(ms));
    if (n <= kMaxTimeoutMs) {
      step.kind = ConsentStep::kPostpone;
      step.postpone_for = std::chrono::milliseconds(n);
      return step;
    }
  }
  return Status(Code::kInvalidArgument, "'" + std::string(text) +
                                            "' is not accept, decline or postpone:MILLISECONDS (0 to " +
                                            std::to_string(kMaxTimeoutMs) + ")");
}

}  // namespace ota::client
