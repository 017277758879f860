#include "services/integrations/directory_sync_csv.h"

#include <algorithm>
#include <map>
#include <optional>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/auth/ids.h"
#include "common/calendar/calendar.h"

namespace integrations {
namespace {

constexpr const char* kColumns[] = {"kind",      "person_id", "display_name", "team_id",
                                    "manager_id", "time_zone", "active",       "slack_user_id"};
// Teams read to check references (the org's teams, at most).
constexpr size_t kMaxTeams = 10000;

struct Row {
  int line = 0;
  std::string kind;
  std::map<std::string, std::string> cells;
  std::string error;  // set when the row cannot be applied
  kudos::v1::Person person;
  kudos::v1::Team team;
  std::string slack_user_id;
};

int DisplayNameLength(absl::string_view text) {
  int count = 0;
  for (char c : text) count += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return count;
}

std::string IdError(absl::string_view column, absl::string_view id) {
  return absl::StrCat(column, ": '", absl::CHexEscape(id.substr(0, 80)), "' must be ",
                      common::auth::kIdRule);
}

// The row's own checks: ids, names, zone, active; references come later.
void CheckRow(Row& row) {
  auto cell = [&](const char* name) -> const std::string& { return row.cells[name]; };
  std::string name = cell("display_name");
  int length = DisplayNameLength(name);
  if (row.kind == "team") {
    row.team.set_team_id(cell("team_id"));
    row.team.set_display_name(name);
    if (!common::auth::ValidId(row.team.team_id())) {
      row.error = IdError("team_id", row.team.team_id());
    } else if (length < 1 || length > 100) {
      row.error = "display_name: must be 1..100 characters";
    }
    return;
  }
  if (row.kind != "person") {
    row.error = absl::StrCat("kind: '", absl::CHexEscape(row.kind.substr(0, 20)), "' must be person or team");
    return;
  }
  kudos::v1::Person& person = row.person;
  person.set_person_id(cell("person_id"));
  person.set_display_name(name);
  person.set_team_id(cell("team_id"));
  person.set_manager_id(cell("manager_id"));
  person.set_time_zone(cell("time_zone"));
  std::string active = absl::AsciiStrToLower(cell("active"));
  row.slack_user_id = cell("slack_user_id");
  if (!common::auth::ValidId(person.person_id())) {
    row.error = IdError("person_id", person.person_id());
  } else if (length < 1 || length > 100) {
    row.error = "display_name: must be 1..100 characters";
  } else if (!person.team_id().empty() && !common::auth::ValidId(person.team_id())) {
    row.error = IdError("team_id", person.team_id());
  } else if (!person.manager_id().empty() && !common::auth::ValidId(person.manager_id())) {
    row.error = IdError("manager_id", person.manager_id());
  } else if (person.manager_id() == person.person_id()) {
    row.error = "manager_id: a person cannot manage themself";
  } else if (!person.time_zone().empty() && !common::calendar::LoadZone(person.time_zone()).ok()) {
    row.error = absl::StrCat("time_zone: '", absl::CHexEscape(person.time_zone().substr(0, 64)),
                             "' is not an IANA time zone");
  } else if (active != "" && active != "true" && active != "false" && active != "1" &&
             active != "0" && active != "yes" && active != "no") {
    row.error = "active: must be true or false (or empty for true)";
  } else if (!row.slack_user_id.empty() && !common::auth::ValidId(row.slack_user_id)) {
    row.error = IdError("slack_user_id", row.slack_user_id);
  }
  person.set_active(active == "" || active == "true" || active == "1" || active == "yes");
}

// What differs between the stored person and the row's, for the report.
std::string Changes(const kudos::v1::Person& before, const kudos::v1::Person& after) {
  std::vector<std::string> changed;
  if (before.display_name() != after.display_name()) changed.push_back("display_name");
  if (before.team_id() != after.team_id()) changed.push_back("team_id");
  if (before.manager_id() != after.manager_id()) changed.push_back("manager_id");
  if (before.time_zone() != after.time_zone()) changed.push_back("time_zone");
  if (before.active() != after.active()) changed.push_back("active");
  return absl::StrJoin(changed, ", ");
}

void Report(v1::ImportDirectoryCsvResponse& response, const Row& row, const std::string& id,
            v1::ImportAction action, std::string message) {
  v1::ImportRowResult* result = response.add_rows();
  result->set_row(row.line);
  result->set_kind(row.kind);
  result->set_id(id);
  result->set_action(action);
  result->set_message(std::move(message));
  switch (action) {
    case v1::IMPORT_ACTION_CREATED: response.set_created(response.created() + 1); break;
    case v1::IMPORT_ACTION_UPDATED: response.set_updated(response.updated() + 1); break;
    case v1::IMPORT_ACTION_UNCHANGED: response.set_unchanged(response.unchanged() + 1); break;
    default: response.set_errors(response.errors() + 1); break;
  }
}

// People ordered so that a manager in the file comes before their reports;
// the rows in a manager cycle get an error.
std::vector<Row*> ManagersFirst(std::vector<Row*> people) {
  std::map<std::string, Row*> by_id;
  for (Row* row : people) by_id[row->person.person_id()] = row;
  std::vector<Row*> ordered;
  std::set<std::string> placed;
  // Each pass places every row whose manager (if in the file) is placed: at
  // most people.size() passes.
  for (size_t pass = 0; pass <= people.size() && ordered.size() < people.size(); ++pass) {
    size_t before = ordered.size();
    for (Row* row : people) {
      const std::string& id = row->person.person_id();
      if (placed.count(id) > 0) continue;
      const std::string& manager = row->person.manager_id();
      if (manager.empty() || by_id.count(manager) == 0 || placed.count(manager) > 0) {
        ordered.push_back(row);
        placed.insert(id);
      }
    }
    if (ordered.size() == before) break;
  }
  for (Row* row : people) {
    if (placed.count(row->person.person_id()) == 0) {
      row->error = "manager_id: the managers in the file form a cycle";
      ordered.push_back(row);
    }
  }
  return ordered;
}

}  // namespace

absl::StatusOr<std::vector<CsvRecord>> ParseCsv(absl::string_view text) {
  std::vector<CsvRecord> records;
  CsvRecord record;
  std::string field;
  bool in_quotes = false;
  bool field_started = false;
  int line = 1;
  record.line = 1;
  auto end_field = [&] {
    record.fields.push_back(std::move(field));
    field.clear();
    field_started = false;
  };
  auto end_record = [&] {
    end_field();
    bool blank = record.fields.size() == 1 && record.fields[0].empty();
    if (!blank) records.push_back(std::move(record));
    record = CsvRecord();
    record.line = line;
  };
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (in_quotes) {
      if (c == '"' && i + 1 < text.size() && text[i + 1] == '"') {
        field.push_back('"');
        ++i;
      } else if (c == '"') {
        in_quotes = false;
      } else {
        if (c == '\n') ++line;
        field.push_back(c);
      }
      continue;
    }
    if (c == '"' && !field_started) {
      in_quotes = true;
      field_started = true;
    } else if (c == ',') {
      end_field();
    } else if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') {
      continue;
    } else if (c == '\n') {
      ++line;
      end_record();
    } else {
      field.push_back(c);
      field_started = true;
    }
  }
  if (in_quotes) {
    return absl::InvalidArgumentError(absl::StrCat("csv: line ", record.line, ": a quoted field is not closed"));
  }
  end_record();
  return records;
}

CsvImporter::CsvImporter(KudosDirectory& directory, SlackUserLinks slack_links)
    : directory_(directory), slack_links_(std::move(slack_links)) {}

absl::StatusOr<v1::ImportDirectoryCsvResponse> CsvImporter::Import(const std::string& org,
                                                                   const std::string& actor,
                                                                   absl::string_view csv,
                                                                   bool dry_run) {
  if (csv.size() > kMaxCsvBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("csv: ", csv.size(), " bytes, at most ", kMaxCsvBytes, " per call: split the file"));
  }
  absl::StatusOr<std::vector<CsvRecord>> records = ParseCsv(csv);
  if (!records.ok()) return records.status();
  if (records->empty()) return absl::InvalidArgumentError("csv: no header row");
  if (records->size() - 1 > kMaxCsvRows) {
    return absl::InvalidArgumentError(absl::StrCat("csv: ", records->size() - 1, " rows, at most ",
                                                   kMaxCsvRows, " per call: split the file"));
  }
  const std::vector<std::string>& header = records->front().fields;
  std::set<std::string> known(std::begin(kColumns), std::end(kColumns));
  std::set<std::string> seen;
  for (const std::string& raw : header) {
    std::string column = absl::AsciiStrToLower(absl::StripAsciiWhitespace(raw));
    if (known.count(column) == 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "csv: unknown column '", absl::CHexEscape(column.substr(0, 40)), "' (columns: ",
          absl::StrJoin(kColumns, ", "), ")"));
    }
    if (!seen.insert(column).second) {
      return absl::InvalidArgumentError(absl::StrCat("csv: column '", column, "' appears twice"));
    }
  }
  if (seen.count("display_name") == 0 || (seen.count("person_id") == 0 && seen.count("team_id") == 0)) {
    return absl::InvalidArgumentError("csv: the header needs display_name and person_id (or team_id for teams)");
  }

  std::vector<Row> rows;
  rows.reserve(records->size() - 1);
  for (size_t r = 1; r < records->size(); ++r) {
    const CsvRecord& record = (*records)[r];
    Row row;
    row.line = record.line;
    for (size_t c = 0; c < header.size() && c < record.fields.size(); ++c) {
      row.cells[absl::AsciiStrToLower(absl::StripAsciiWhitespace(header[c]))] =
          std::string(absl::StripAsciiWhitespace(record.fields[c]));
    }
    row.kind = row.cells.count("kind") > 0 && !row.cells["kind"].empty()
                   ? absl::AsciiStrToLower(row.cells["kind"])
                   : "person";
    if (record.fields.size() != header.size()) {
      row.error = absl::StrCat(record.fields.size(), " fields, the header has ", header.size());
    } else {
      CheckRow(row);
    }
    rows.push_back(std::move(row));
  }

  v1::ImportDirectoryCsvResponse response;
  response.set_dry_run(dry_run);
  auto teams = directory_.ListTeams(org, actor, kMaxTeams);
  if (!teams.ok()) return teams.status();
  std::set<std::string> team_ids;
  for (const auto& [id, unused] : *teams) team_ids.insert(id);

  // Teams first.
  std::set<std::string> file_teams;
  for (Row& row : rows) {
    if (row.kind != "team") continue;
    const std::string& id = row.team.team_id();
    if (row.error.empty() && !file_teams.insert(id).second) row.error = "team_id: appears twice in the file";
    if (!row.error.empty()) {
      Report(response, row, id, v1::IMPORT_ACTION_ERROR, row.error);
      continue;
    }
    auto existing = teams->find(id);
    if (existing != teams->end()) {
      if (existing->second.display_name() == row.team.display_name()) {
        Report(response, row, id, v1::IMPORT_ACTION_UNCHANGED, "");
      } else {
        Report(response, row, id, v1::IMPORT_ACTION_ERROR,
               absl::StrCat("team exists as '", existing->second.display_name(),
                            "'; teams cannot be renamed"));
      }
      continue;
    }
    if (!dry_run) {
      absl::Status created = directory_.CreateTeam(org, actor, row.team);
      if (!created.ok()) {
        Report(response, row, id, v1::IMPORT_ACTION_ERROR, std::string(created.message()));
        continue;
      }
    }
    team_ids.insert(id);
    Report(response, row, id, v1::IMPORT_ACTION_CREATED, "");
  }

  // Then people, managers first.
  std::vector<Row*> people;
  std::set<std::string> file_people;
  std::set<std::string> file_slack_users;
  for (Row& row : rows) {
    if (row.kind == "team") continue;
    if (row.error.empty() && !file_people.insert(row.person.person_id()).second) {
      row.error = "person_id: appears twice in the file";
    }
    if (row.error.empty() && !row.slack_user_id.empty() &&
        !file_slack_users.insert(row.slack_user_id).second) {
      row.error = "slack_user_id: appears twice in the file";
    }
    if (row.error.empty() && !row.slack_user_id.empty() && slack_links_.lookup == nullptr) {
      row.error = "slack_user_id: the Slack app is not part of this service";
    }
    if (!row.error.empty()) {
      Report(response, row, row.cells["person_id"], v1::IMPORT_ACTION_ERROR, row.error);
      continue;
    }
    people.push_back(&row);
  }
  std::set<std::string> applied;  // people that exist once their row is applied
  for (Row* row : ManagersFirst(people)) {
    kudos::v1::Person& person = row->person;
    const std::string& id = person.person_id();
    if (!row->error.empty()) {
      Report(response, *row, id, v1::IMPORT_ACTION_ERROR, row->error);
      continue;
    }
    if (!person.team_id().empty() && team_ids.count(person.team_id()) == 0) {
      Report(response, *row, id, v1::IMPORT_ACTION_ERROR,
             absl::StrCat("team_id: team '", person.team_id(), "' does not exist (add a team row)"));
      continue;
    }
    if (!person.manager_id().empty() && applied.count(person.manager_id()) == 0) {
      auto manager = directory_.GetPerson(org, actor, person.manager_id());
      if (!manager.ok()) return manager.status();
      if (!manager->has_value()) {
        Report(response, *row, id, v1::IMPORT_ACTION_ERROR,
               absl::StrCat("manager_id: person '", person.manager_id(), "' does not exist"));
        continue;
      }
    }
    auto current = directory_.GetPerson(org, actor, id);
    if (!current.ok()) return current.status();
    v1::ImportAction action = !current->has_value() ? v1::IMPORT_ACTION_CREATED
                              : (*current)->SerializeAsString() == person.SerializeAsString()
                                  ? v1::IMPORT_ACTION_UNCHANGED
                                  : v1::IMPORT_ACTION_UPDATED;
    std::string message = action == v1::IMPORT_ACTION_UPDATED ? Changes(**current, person) : "";
    bool link_changes = false;
    if (!row->slack_user_id.empty()) {
      auto linked = slack_links_.lookup(org, row->slack_user_id);
      if (!linked.ok()) return linked.status();
      link_changes = !linked->has_value() || **linked != id;
    }
    if (link_changes && action != v1::IMPORT_ACTION_CREATED) {
      message = message.empty() ? "slack_user_id" : absl::StrCat(message, ", slack_user_id");
      action = v1::IMPORT_ACTION_UPDATED;
    }
    if (!dry_run && action != v1::IMPORT_ACTION_UNCHANGED) {
      absl::Status written = absl::OkStatus();
      if (action == v1::IMPORT_ACTION_CREATED) {
        written = directory_.CreatePerson(org, actor, person);
      } else if ((*current)->SerializeAsString() != person.SerializeAsString()) {
        written = directory_.UpdatePerson(org, actor, person);
      }
      if (written.ok() && link_changes) {
        written = slack_links_.put(org, row->slack_user_id, id);
        if (!written.ok()) {
          written = absl::Status(written.code(), absl::StrCat("slack_user_id: ", written.message()));
        }
      }
      if (!written.ok()) {
        Report(response, *row, id, v1::IMPORT_ACTION_ERROR, std::string(written.message()));
        continue;
      }
    }
    applied.insert(id);
    Report(response, *row, id, action, message);
  }
  // The report in the file's order.
  std::stable_sort(response.mutable_rows()->begin(), response.mutable_rows()->end(),
                   [](const v1::ImportRowResult& a, const v1::ImportRowResult& b) {
                     return a.row() < b.row();
                   });
  return response;
}

}  // namespace integrations
