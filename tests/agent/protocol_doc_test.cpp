// docs/PROTOCOL.md section 7 and kRules are the same table: row for row, in the same order.
#include <catch2/catch.hpp>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "state_machine.hpp"

using namespace ota::agent_impl;
namespace v1 = ota::v1;

namespace {

std::string trim(std::string s) {
  const char* ws = " \t";
  s.erase(0, s.find_first_not_of(ws));
  s.erase(s.find_last_not_of(ws) + 1);
  return s;
}

std::vector<std::string> cells(const std::string& line) {
  std::vector<std::string> out;
  std::string cell;
  for (size_t i = 1; i < line.size(); ++i) {  // line starts with '|'
    if (line[i] == '|') {
      out.push_back(trim(cell));
      cell.clear();
    } else {
      cell += line[i];
    }
  }
  return out;
}

// The lines of section 7 of the protocol document.
std::vector<std::string> section_7() {
  std::ifstream in(OTA_PROTOCOL_DOC);
  REQUIRE(in.good());
  std::vector<std::string> lines;
  bool inside = false;
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("## ", 0) == 0) inside = line.rfind("## 7. ", 0) == 0;
    if (inside) lines.push_back(line);
  }
  return lines;
}

// The rows of the transition table: the one whose header starts "| Event | From | Guard |".
std::vector<std::vector<std::string>> doc_rows() {
  std::vector<std::vector<std::string>> rows;
  bool in_table = false;
  for (const std::string& line : section_7()) {
    if (line.rfind("| Event | From | Guard | Action |", 0) == 0) {
      in_table = true;
      continue;
    }
    if (!in_table) continue;
    if (line.rfind("|---", 0) == 0) continue;
    if (line.rfind("|", 0) != 0) break;
    rows.push_back(cells(line));
  }
  return rows;
}

// A phase list as the doc writes it: "any", "unchanged", "-", or `PHASE`s separated by commas.
std::string phases_text(PhaseSet s) {
  if (s.empty()) return "-";
  if (s.is_any()) return "any";
  std::string out;
  if (s.has_unchanged()) out = "unchanged";
  for (int p = v1::Phase_MIN; p <= v1::Phase_MAX; ++p) {
    if (!s.contains(static_cast<v1::Phase>(p))) continue;
    if (!out.empty()) out += ", ";
    out += std::string("`") + phase_label(static_cast<v1::Phase>(p)) + "`";
  }
  return out;
}

std::string code(const char* name) { return std::string("`") + name + "`"; }

// How kRules' row would read in the doc (all but the prose after the action's name).
std::vector<std::string> expected(const Rule& r) {
  return {code(event_name(r.event)),
          phases_text(r.from),
          code(guard_name(r.guard)),
          code(action_name(r.action)),
          r.answer == Answer::kNone ? "-" : code(answer_name(r.answer)),
          phases_text(r.to),
          phases_text(r.to_on_failure)};
}

// The doc's cells, with the action cell cut to the action's name (the prose follows a colon).
std::vector<std::string> comparable(std::vector<std::string> row) {
  if (row.size() >= 4) row[3] = trim(row[3].substr(0, row[3].find(':')));
  return row;
}

std::string as_line(const std::vector<std::string>& cells) {
  std::string out = "|";
  for (const auto& c : cells) out += " " + c + " |";
  return out;
}

}  // namespace

TEST_CASE("PROTOCOL.md section 7 lists exactly the rows of kRules", "[unit][agent][rules][docs]") {
  const auto doc = doc_rows();
  std::vector<const Rule*> code_rows;
  for (const Rule& r : rules()) code_rows.push_back(&r);
  // On a mismatch, these are the rows as the doc should begin them.
  std::ostringstream want;
  for (const Rule* r : code_rows) want << as_line(expected(*r)) << "\n";
  INFO("kRules as doc rows (action prose omitted):\n" << want.str());
  REQUIRE(doc.size() == code_rows.size());
  for (size_t i = 0; i < doc.size(); ++i) {
    INFO("row " << i + 1 << ": " << as_line(doc[i]));
    REQUIRE(doc[i].size() == 7);
    CHECK(comparable(doc[i]) == expected(*code_rows[i]));
  }
}

TEST_CASE("PROTOCOL.md section 7 explains every guard", "[unit][agent][rules][docs]") {
  std::string text;
  for (const std::string& line : section_7()) text += line + "\n";
  for (const Rule& r : rules()) {
    INFO(guard_name(r.guard));
    CHECK(text.find("| " + code(guard_name(r.guard)) + " | ") != std::string::npos);
  }
}
