// The CSV import of people and teams (DirectorySyncService.ImportDirectoryCsv).
//
// A header row names the columns, in any order: kind (optional: "person",
// the default, or "team"), person_id, display_name, team_id, manager_id,
// time_zone, active, slack_user_id (optional). A person row states the whole
// person (an empty team_id or manager_id means none; empty active means
// true); a team row uses team_id and display_name. Teams are applied first,
// then people with each manager before their reports. Idempotent by id:
// importing the same file again reports every row unchanged and writes nothing.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "integrations/v1/directory_sync.pb.h"
#include "services/integrations/directory_sync_directory.h"

namespace integrations {

inline constexpr size_t kMaxCsvBytes = 1024 * 1024;
inline constexpr size_t kMaxCsvRows = 5000;

struct CsvRecord {
  // 1-based line where the record starts.
  int line = 0;
  std::vector<std::string> fields;
};

// RFC 4180 records ("" escapes a quote inside quotes; CRLF or LF); blank
// lines are skipped. INVALID_ARGUMENT naming the line on an unterminated quote.
absl::StatusOr<std::vector<CsvRecord>> ParseCsv(absl::string_view text);

// The Slack app's user links (slack_user_map.h), for the slack_user_id column.
struct SlackUserLinks {
  // The person `slack_user_id` is linked to, if any.
  std::function<absl::StatusOr<std::optional<std::string>>(const std::string& org,
                                                           const std::string& slack_user_id)>
      lookup;
  // Links it to `person_id` (replacing an earlier link).
  std::function<absl::Status(const std::string& org, const std::string& slack_user_id,
                             const std::string& person_id)>
      put;
};

class CsvImporter {
 public:
  CsvImporter(KudosDirectory& directory, SlackUserLinks slack_links);

  // INVALID_ARGUMENT for a file past the bounds or without a usable header;
  // every row's own problem is that row's error in the report.
  absl::StatusOr<v1::ImportDirectoryCsvResponse> Import(const std::string& org,
                                                        const std::string& actor,
                                                        absl::string_view csv, bool dry_run);

 private:
  KudosDirectory& directory_;
  SlackUserLinks slack_links_;
};

}  // namespace integrations
