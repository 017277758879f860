#include "services/programs/celebrations_service.h"

#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/auth/ids.h"
#include "common/calendar/calendar.h"
#include "common/grpc/status.h"
#include "google/protobuf/util/time_util.h"
#include "services/programs/celebrations_rules.h"

namespace programs::celebrations {
namespace {

using common::auth::Principal;
using common::grpc_util::ToGrpcStatus;

constexpr int kDefaultPageSize = 50;
constexpr int kMaxPageSize = 200;
// Attempts of a profile's compare-and-set against concurrent setters.
constexpr int kMaxUpdateAttempts = 3;
constexpr v1::CelebrationKind kKinds[] = {v1::CELEBRATION_KIND_BIRTHDAY,
                                          v1::CELEBRATION_KIND_WORK_ANNIVERSARY};

// A person acts for themself; an admin for anyone of the org. Screens and
// services hold no profile.
absl::StatusOr<std::string> TargetPerson(const Principal& principal, const std::string& requested) {
  if (principal.is_service() || principal.is_screen_only()) {
    return absl::PermissionDeniedError("this token cannot act as a person (screens are read-only)");
  }
  const std::string person = requested.empty() ? principal.subject : requested;
  if (absl::Status s = common::auth::CheckId("person_id", person); !s.ok()) return s;
  if (person != principal.subject && !principal.is_admin()) {
    return absl::PermissionDeniedError(absl::StrCat(
        "person_id: '", principal.subject, "' may not change or read the celebrations of '",
        person, "' (admins only)"));
  }
  return person;
}

absl::Status RequireAdmin(const Principal& principal, absl::string_view what) {
  if (principal.is_admin() && !principal.is_service()) return absl::OkStatus();
  return absl::PermissionDeniedError(absl::StrCat(what, ": admins only"));
}

google::protobuf::Timestamp ToTimestamp(absl::Time t) {
  return google::protobuf::util::TimeUtil::SecondsToTimestamp(absl::ToUnixSeconds(t));
}

// The profile as answered: its zone and the next celebrations at `now`.
v1::CelebrationProfile Decorated(v1::CelebrationProfile profile, const std::string& zone_name,
                                 const absl::TimeZone& zone, absl::Time now) {
  profile.set_time_zone(zone_name);
  if (auto next = NextCelebration(profile, v1::CELEBRATION_KIND_BIRTHDAY, now, zone)) {
    *profile.mutable_next_birthday_time() = ToTimestamp(next->time);
  }
  if (auto next = NextCelebration(profile, v1::CELEBRATION_KIND_WORK_ANNIVERSARY, now, zone)) {
    *profile.mutable_next_anniversary_time() = ToTimestamp(next->time);
  }
  return profile;
}

// The stored form: the inputs only (zone and times are derived).
v1::CelebrationProfile Stored(const v1::CelebrationProfile& profile) {
  v1::CelebrationProfile stored = profile;
  stored.clear_time_zone();
  stored.clear_next_birthday_time();
  stored.clear_next_anniversary_time();
  return stored;
}

absl::StatusOr<absl::TimeZone> PersonZone(const DirectoryPerson& person) {
  absl::StatusOr<absl::TimeZone> zone = common::calendar::LoadZone(person.time_zone);
  if (!zone.ok()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the directory's time zone '", person.time_zone, "' is unknown; fix it in the directory"));
  }
  return zone;
}

absl::StatusOr<DirectoryPerson> Lookup(Directory& directory, const std::string& org,
                                       const std::string& person) {
  absl::StatusOr<DirectoryPerson> found = directory.Lookup(org, person);
  if (absl::IsNotFound(found.status())) {
    return absl::NotFoundError(
        absl::StrCat("person_id: '", person, "' is not in the org's directory"));
  }
  return found;
}

}  // namespace

CelebrationsServiceImpl::CelebrationsServiceImpl(common::auth::Guard guard,
                                                 CelebrationsStore& store, Directory& directory,
                                                 Clock clock)
    : guard_(std::move(guard)), store_(store), directory_(directory), clock_(std::move(clock)) {}

absl::StatusOr<v1::CelebrationProfile> UpdateProfile(CelebrationsStore& store,
                                                     Directory& directory, const std::string& org,
                                                     const std::string& person,
                                                     const Mutation& mutate, absl::Time now) {
  absl::StatusOr<DirectoryPerson> who = Lookup(directory, org, person);
  if (!who.ok()) return who.status();
  absl::StatusOr<absl::TimeZone> zone = PersonZone(*who);
  if (!zone.ok()) return zone.status();
  for (int attempt = 0; attempt < kMaxUpdateAttempts; ++attempt) {
    absl::StatusOr<std::optional<v1::CelebrationProfile>> current =
        store.GetProfile(org, person);
    if (!current.ok()) return current.status();
    v1::CelebrationProfile profile;
    if (current->has_value()) profile = **current;
    profile.set_person_id(person);
    mutate(profile);
    profile = Stored(profile);
    std::vector<Schedule> schedules;
    for (v1::CelebrationKind kind : kKinds) {
      Schedule schedule{kind, std::nullopt, absl::UnixEpoch()};
      if (std::optional<Occurrence> next = NextCelebration(profile, kind, now, *zone)) {
        schedule.year = next->year;
        schedule.time = next->time;
      }
      schedules.push_back(schedule);
    }
    absl::Status put = store.PutProfile(org, profile, *current, schedules);
    if (absl::IsAborted(put)) continue;
    if (!put.ok()) return put;
    return Decorated(std::move(profile), who->time_zone, *zone, now);
  }
  return absl::AbortedError(absl::StrCat("the celebration profile of '", person, "' changed ",
                                         kMaxUpdateAttempts, " times meanwhile; retry"));
}

absl::StatusOr<v1::CelebrationProfile> ReadProfile(CelebrationsStore& store, Directory& directory,
                                                   const std::string& org,
                                                   const std::string& person, absl::Time now) {
  absl::StatusOr<DirectoryPerson> who = Lookup(directory, org, person);
  if (!who.ok()) return who.status();
  absl::StatusOr<absl::TimeZone> zone = PersonZone(*who);
  if (!zone.ok()) return zone.status();
  absl::StatusOr<std::optional<v1::CelebrationProfile>> stored = store.GetProfile(org, person);
  if (!stored.ok()) return stored.status();
  v1::CelebrationProfile profile;
  if (stored->has_value()) profile = **stored;
  profile.set_person_id(person);
  return Decorated(std::move(profile), who->time_zone, *zone, now);
}

grpc::Status CelebrationsServiceImpl::SetBirthday(grpc::ServerContext* context,
                                                  const v1::SetBirthdayRequest* request,
                                                  v1::SetBirthdayResponse* response) {
  absl::StatusOr<Principal> principal = guard_.Authenticate(*context);
  if (!principal.ok()) return ToGrpcStatus(principal.status());
  absl::StatusOr<std::string> person = TargetPerson(*principal, request->person_id());
  if (!person.ok()) return ToGrpcStatus(person.status());
  if (request->has_birthday()) {
    if (absl::Status s = ValidateMonthDay(request->birthday(), "birthday"); !s.ok()) {
      return ToGrpcStatus(s);
    }
  }
  absl::StatusOr<v1::CelebrationProfile> profile =
      Update(principal->org, *person, [request](v1::CelebrationProfile& p) {
        if (request->has_birthday()) {
          *p.mutable_birthday() = request->birthday();
        } else {
          p.clear_birthday();
        }
      });
  if (!profile.ok()) return ToGrpcStatus(profile.status());
  *response->mutable_profile() = *std::move(profile);
  return grpc::Status::OK;
}

grpc::Status CelebrationsServiceImpl::SetHireDate(grpc::ServerContext* context,
                                                  const v1::SetHireDateRequest* request,
                                                  v1::SetHireDateResponse* response) {
  absl::StatusOr<Principal> principal = guard_.Authenticate(*context);
  if (!principal.ok()) return ToGrpcStatus(principal.status());
  // The hire date sets an anniversary's points: never self-service.
  if (absl::Status s = RequireAdmin(*principal, "SetHireDate"); !s.ok()) return ToGrpcStatus(s);
  if (absl::Status s = common::auth::CheckId("person_id", request->person_id()); !s.ok()) {
    return ToGrpcStatus(s);
  }
  if (request->has_hire_date()) {
    if (absl::Status s = ValidateHireDate(request->hire_date(), "hire_date"); !s.ok()) {
      return ToGrpcStatus(s);
    }
  }
  absl::StatusOr<v1::CelebrationProfile> profile =
      Update(principal->org, request->person_id(), [request](v1::CelebrationProfile& p) {
        if (request->has_hire_date()) {
          *p.mutable_hire_date() = request->hire_date();
        } else {
          p.clear_hire_date();
        }
      });
  if (!profile.ok()) return ToGrpcStatus(profile.status());
  *response->mutable_profile() = *std::move(profile);
  return grpc::Status::OK;
}

grpc::Status CelebrationsServiceImpl::SetCelebrationOptOut(
    grpc::ServerContext* context, const v1::SetCelebrationOptOutRequest* request,
    v1::SetCelebrationOptOutResponse* response) {
  absl::StatusOr<Principal> principal = guard_.Authenticate(*context);
  if (!principal.ok()) return ToGrpcStatus(principal.status());
  absl::StatusOr<std::string> person = TargetPerson(*principal, request->person_id());
  if (!person.ok()) return ToGrpcStatus(person.status());
  const bool opted_out = request->opted_out();
  absl::StatusOr<v1::CelebrationProfile> profile = Update(
      principal->org, *person, [opted_out](v1::CelebrationProfile& p) { p.set_opted_out(opted_out); });
  if (!profile.ok()) return ToGrpcStatus(profile.status());
  *response->mutable_profile() = *std::move(profile);
  return grpc::Status::OK;
}

grpc::Status CelebrationsServiceImpl::GetCelebrationProfile(
    grpc::ServerContext* context, const v1::GetCelebrationProfileRequest* request,
    v1::GetCelebrationProfileResponse* response) {
  absl::StatusOr<Principal> principal = guard_.Authenticate(*context);
  if (!principal.ok()) return ToGrpcStatus(principal.status());
  absl::StatusOr<std::string> person = TargetPerson(*principal, request->person_id());
  if (!person.ok()) return ToGrpcStatus(person.status());
  absl::StatusOr<v1::CelebrationProfile> profile =
      ReadProfile(store_, directory_, principal->org, *person, clock_());
  if (!profile.ok()) return ToGrpcStatus(profile.status());
  *response->mutable_profile() = *std::move(profile);
  return grpc::Status::OK;
}

grpc::Status CelebrationsServiceImpl::GetCelebrationSettings(
    grpc::ServerContext* context, const v1::GetCelebrationSettingsRequest*,
    v1::GetCelebrationSettingsResponse* response) {
  absl::StatusOr<Principal> principal = guard_.Authenticate(*context);
  if (!principal.ok()) return ToGrpcStatus(principal.status());
  absl::StatusOr<v1::CelebrationSettings> settings = store_.GetSettings(principal->org);
  if (!settings.ok()) return ToGrpcStatus(settings.status());
  *response->mutable_settings() = *std::move(settings);
  return grpc::Status::OK;
}

grpc::Status CelebrationsServiceImpl::UpdateCelebrationSettings(
    grpc::ServerContext* context, const v1::UpdateCelebrationSettingsRequest* request,
    v1::UpdateCelebrationSettingsResponse* response) {
  absl::StatusOr<Principal> principal = guard_.Authenticate(*context);
  if (!principal.ok()) return ToGrpcStatus(principal.status());
  if (absl::Status s = RequireAdmin(*principal, "UpdateCelebrationSettings"); !s.ok()) {
    return ToGrpcStatus(s);
  }
  if (absl::Status s = ValidateSettings(request->settings()); !s.ok()) return ToGrpcStatus(s);
  if (absl::Status s = store_.PutSettings(principal->org, request->settings()); !s.ok()) {
    return ToGrpcStatus(s);
  }
  *response->mutable_settings() = request->settings();
  return grpc::Status::OK;
}

grpc::Status CelebrationsServiceImpl::ListCelebrations(grpc::ServerContext* context,
                                                       const v1::ListCelebrationsRequest* request,
                                                       v1::ListCelebrationsResponse* response) {
  absl::StatusOr<Principal> principal = guard_.Authenticate(*context);
  if (!principal.ok()) return ToGrpcStatus(principal.status());
  if (request->page_size() < 0 || request->page_size() > kMaxPageSize) {
    return ToGrpcStatus(absl::InvalidArgumentError(absl::StrCat(
        "page_size: must be in 0..", kMaxPageSize, " (0: ", kDefaultPageSize, "), got ",
        request->page_size())));
  }
  const int page_size = request->page_size() == 0 ? kDefaultPageSize : request->page_size();
  int offset = 0;
  if (!request->page_token().empty() &&
      (!absl::SimpleAtoi(request->page_token(), &offset) || offset < 1 ||
       offset >= kMaxFeedEntries)) {
    return ToGrpcStatus(absl::InvalidArgumentError(
        "page_token: not one this RPC gave; start again without a page_token"));
  }
  absl::StatusOr<std::vector<v1::Celebration>> page =
      store_.Feed(principal->org, offset, page_size);
  if (!page.ok()) return ToGrpcStatus(page.status());
  for (v1::Celebration& celebration : *page) {
    *response->add_celebrations() = std::move(celebration);
  }
  const int next = offset + page_size;
  if (static_cast<int>(page->size()) == page_size && next < kMaxFeedEntries) {
    response->set_next_page_token(absl::StrCat(next));
  }
  return grpc::Status::OK;
}

}  // namespace programs::celebrations
