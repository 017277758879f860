#include "services/leaderboard/leaderboard_service.h"

#include <algorithm>
#include <chrono>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/audit.h"
#include "common/check/check.h"
#include "common/grpc/status.h"
#include "common/log/log.h"

namespace leaderboard {

using common::auth::Principal;
using common::grpc_util::Done;
using common::grpc_util::Into;
using common::grpc_util::ToGrpcStatus;

namespace {

constexpr int kDefaultPageSize = 10;
constexpr int kMaxPageSize = 100;
static_assert(kMaxWatchTopN == kMaxPageSize, "a watch shows at most one page");
constexpr int kMaxNeighbors = 50;

void FillPeriod(const common::calendar::Period& period, v1::Window window,
                google::protobuf::Timestamp* start, google::protobuf::Timestamp* end) {
  if (window == v1::WINDOW_ALL_TIME) return;
  ToProto(period.start, start);
  ToProto(period.end, end);
}

void FillDate(absl::CivilDay day, common::v1::Date* date) {
  date->set_year(static_cast<int32_t>(day.year()));
  date->set_month(day.month());
  date->set_day(day.day());
}

void FillEntry(const RankedEntry& entry, const std::map<std::string, std::string>& names,
               v1::LeaderboardEntry* e) {
  e->set_rank(entry.rank);
  e->set_subject_id(entry.subject_id);
  auto name = names.find(entry.subject_id);
  e->set_display_name(name == names.end() ? entry.subject_id : name->second);
  e->set_score(entry.score);
}

void FillEntries(const std::vector<RankedEntry>& entries,
                 const std::map<std::string, std::string>& names,
                 google::protobuf::RepeatedPtrField<v1::LeaderboardEntry>* out) {
  out->Reserve(out->size() + static_cast<int>(entries.size()));
  for (const RankedEntry& entry : entries) FillEntry(entry, names, out->Add());
}

absl::Status CheckOrgClaim(const Principal& who) {
  if (!ValidId(who.org)) return absl::UnauthenticatedError("token: org claim is not a valid id");
  return absl::OkStatus();
}

}  // namespace

// What one board read (GetLeaderboard or GetRank) carries from step to step.
struct LeaderboardServiceImpl::BoardRead {
  std::string org;
  v1::Board board;  // as asked (a page token may pin its period)
  std::shared_ptr<const OrgCalendar> calendar;  // the store's cached one, shared
  ResolvedBoard resolved;
  std::optional<v1::Season> season;    // a season's board (Board.season_id)
  int64_t total = 0;                   // entries on the board
  std::vector<RankedEntry> entries;    // whose names are read
  std::map<std::string, std::string> names;
  bool names_read = false;  // `names` came with the board read (GetRank)
  // A first page with its names, from the replica's page cache (then
  // `entries`/`names` stay empty).
  std::shared_ptr<const CachedPage> first_page;
};

LeaderboardServiceImpl::LeaderboardServiceImpl(common::auth::Guard auth, Store& store,
                                               Projector& projector, Watchers& watchers,
                                               insights::Reader& insights,
                                               ServiceWorkers workers,
                                               common::grpc_util::UnaryOptions options,
                                               SeasonStore* seasons)
    : auth_(auth),
      store_(store),
      seasons_(seasons),
      projector_(projector),
      watchers_(watchers),
      insights_(insights),
      workers_(workers),
      calls_(std::move(auth), std::move(options), CheckOrgClaim) {
  KUDOS_CHECK(store_.has_async(), "the RPC handlers read through the AsyncClient");
  KUDOS_CHECK(workers_.rebuild != nullptr && workers_.insights != nullptr,
              "long calls have their workers");
}

absl::StatusOr<Principal> LeaderboardServiceImpl::Authenticate(
    grpc::ServerContextBase& context) {
  // Also charges the rate limits.
  absl::StatusOr<Principal> who = auth_.Authenticate(context);
  if (!who.ok()) return who.status();
  if (absl::Status s = CheckOrgClaim(*who); !s.ok()) return s;
  return who;
}

// ---------------------------------------------------------------- board steps

void LeaderboardServiceImpl::ReadCalendar(Call& call, const std::shared_ptr<BoardRead>& read) {
  call.Then([this, &call, read](Done done) {
    store_.SharedCalendarAsync(read->org, call.deadline(), Into(&read->calendar, std::move(done)));
  });
  if (read->board.season_id().empty()) return;
  // A season's board: its definition says where and what it is.
  call.Then([this, &call, read](Done done) {
    if (!ValidId(read->board.season_id())) {
      return std::move(done)(absl::InvalidArgumentError(
          "board.season_id: must be 1..64 characters of [A-Za-z0-9._-]"));
    }
    store_.SeasonAsync(read->org, read->board.season_id(), call.deadline(),
                       [read, done = std::move(done)](
                           absl::StatusOr<std::optional<v1::Season>> got) mutable {
                         if (!got.ok()) return std::move(done)(got.status());
                         if (!got->has_value()) {
                           return std::move(done)(absl::NotFoundError(absl::StrCat(
                               "board.season_id: no season '", read->board.season_id(), "'")));
                         }
                         read->season = **std::move(got);
                         std::move(done)(absl::OkStatus());
                       });
  });
}

absl::StatusOr<ResolvedBoard> LeaderboardServiceImpl::Resolve(const BoardRead& read) {
  if (read.season.has_value()) return ResolveSeasonBoard(read.org, *read.season);
  return ResolveBoard(read.org, read.board, *read.calendar, absl::Now());
}

void LeaderboardServiceImpl::CheckEmptyScope(Call& call, const std::shared_ptr<BoardRead>& read) {
  // Only an empty board costs the check (live boards need no extra read).
  call.Then([this, &call, read](Done done) {
    if (read->total != 0 || read->season.has_value()) return std::move(done)(absl::OkStatus());
    if (read->board.scope() != v1::SCOPE_TEAM) {
      return std::move(done)(CheckScopeKnown(read->board, *read->calendar, {}));
    }
    store_.TeamsAsync(
        read->org, {read->board.scope_id()}, call.deadline(),
        [read, done = std::move(done)](
            absl::StatusOr<std::map<std::string, kudos::v1::Team>> found) mutable {
          if (!found.ok()) return std::move(done)(found.status());
          std::set<std::string> teams;
          for (const auto& [id, team] : *found) teams.insert(id);
          std::move(done)(CheckScopeKnown(read->board, *read->calendar, teams));
        });
  });
}

bool LeaderboardServiceImpl::NamesOfTeams(const BoardRead& read) {
  return read.season.has_value() ? read.season->participants() == v1::SEASON_PARTICIPANTS_TEAMS
                                 : read.board.scope() == v1::SCOPE_TEAMS;
}

void LeaderboardServiceImpl::ReadNames(Call& call, const std::shared_ptr<BoardRead>& read) {
  call.Then([this, &call, read](Done done) {
    // Cached with the first page, or read with the board (GetRank).
    if (read->first_page != nullptr || read->names_read) return std::move(done)(absl::OkStatus());
    std::vector<std::string> ids;
    ids.reserve(read->entries.size());
    for (const RankedEntry& entry : read->entries) ids.push_back(entry.subject_id);
    store_.DisplayNamesAsync(read->org, NamesOfTeams(*read), ids, call.deadline(),
                             Into(&read->names, std::move(done)));
  });
}

void LeaderboardServiceImpl::ReadFirstPage(Call& call, const std::shared_ptr<BoardRead>& read,
                                           int page_size, Done done) {
  const bool teams = NamesOfTeams(*read);
  // The page's names depend on whether its subjects are teams or people.
  std::string key = absl::StrCat(read->resolved.key, teams ? "|teams|" : "|people|", page_size);
  const common::redis::Deadline deadline = call.deadline();
  watchers_.pages().Get(
      read->org, key, std::chrono::steady_clock::now(), deadline,
      [this, org = read->org, board_key = read->resolved.key, teams, page_size,
       deadline](PageCache::Fetched fetched) mutable {
        FetchFirstPage(org, board_key, teams, page_size, deadline, std::move(fetched));
      },
      [read, done = std::move(done)](absl::StatusOr<PageCache::Value> got) mutable {
        if (!got.ok()) return std::move(done)(got.status());
        read->first_page = *std::move(got);
        read->total = read->first_page->page.total;
        std::move(done)(absl::OkStatus());
      });
}

void LeaderboardServiceImpl::FetchFirstPage(const std::string& org, const std::string& board_key,
                                            bool teams, int page_size,
                                            common::redis::Deadline deadline,
                                            PageCache::Fetched fetched) {
  store_.FirstPageAsync(
      board_key, page_size, deadline,
      [this, org, teams, deadline,
       fetched = std::move(fetched)](absl::StatusOr<BoardPage> page) mutable {
        if (!page.ok()) return std::move(fetched)(page.status());
        std::vector<std::string> ids;
        ids.reserve(page->entries.size());
        for (const RankedEntry& entry : page->entries) ids.push_back(entry.subject_id);
        CachedPage cached;
        cached.page = *std::move(page);
        store_.DisplayNamesAsync(
            org, teams, ids, deadline,
            [cached = std::move(cached), fetched = std::move(fetched)](
                absl::StatusOr<std::map<std::string, std::string>> names) mutable {
              if (!names.ok()) return std::move(fetched)(names.status());
              cached.names = *std::move(names);
              std::move(fetched)(std::move(cached));
            });
      });
}

// ---------------------------------------------------------------- boards

grpc::ServerUnaryReactor* LeaderboardServiceImpl::GetLeaderboard(
    grpc::CallbackServerContext* context, const v1::GetLeaderboardRequest* request,
    v1::GetLeaderboardResponse* response) {
  return calls_.Serve(context, [this, request, response](Call& call) {
    return StartGetLeaderboard(call, *request, *response);
  });
}

absl::Status LeaderboardServiceImpl::StartGetLeaderboard(Call& call,
                                                         const v1::GetLeaderboardRequest& request,
                                                         v1::GetLeaderboardResponse& response) {
  int page_size = request.page_size() == 0 ? kDefaultPageSize : request.page_size();
  if (page_size < 1 || page_size > kMaxPageSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("page_size: ", request.page_size(), " is not within 1..", kMaxPageSize));
  }
  auto read = std::make_shared<BoardRead>();
  read->org = call.principal().org;
  read->board = request.board();
  auto token = std::make_shared<std::optional<PageToken>>();
  auto page = std::make_shared<BoardPage>();
  ReadCalendar(call, read);
  call.Then([read, token, &request]() -> absl::Status {
        if (!request.page_token().empty()) {
          absl::StatusOr<PageToken> decoded = DecodePageToken(request.page_token());
          if (!decoded.ok()) return decoded.status();
          v1::Board& board = read->board;
          if (!board.period().empty() && board.window() != v1::WINDOW_ALL_TIME &&
              board.period() != decoded->period) {
            return absl::InvalidArgumentError("page_token: belongs to another period");
          }
          // A token keeps paging the period it started on, even after a rollover.
          if (board.window() != v1::WINDOW_ALL_TIME) board.set_period(decoded->period);
          *token = *std::move(decoded);
        }
        absl::StatusOr<ResolvedBoard> resolved = Resolve(*read);
        if (!resolved.ok()) return resolved.status();
        if (*token && (*token)->board_key != resolved->key) {
          return absl::InvalidArgumentError("page_token: belongs to another board");
        }
        read->resolved = *std::move(resolved);
        return absl::OkStatus();
      })
      .Then([this, &call, read, token, page, page_size](Done done) {
        // A first page: from the replica's page cache, or read once for all
        // the calls asking for it at the same time.
        if (!*token) return ReadFirstPage(call, read, page_size, std::move(done));
        auto into = [read, page, done = std::move(done)](absl::StatusOr<BoardPage> got) mutable {
          if (!got.ok()) return std::move(done)(got.status());
          *page = *std::move(got);
          read->total = page->total;
          read->entries = page->entries;
          std::move(done)(absl::OkStatus());
        };
        const PageToken& t = **token;
        store_.PageAsync(read->resolved.key, t.direction, t.score, t.subject_id, page_size,
                         call.deadline(), std::move(into));
      });
  CheckEmptyScope(call, read);
  ReadNames(call, read);
  call.Then([read, token, page, &response]() -> absl::Status {
    const BoardPage& shown = read->first_page != nullptr ? read->first_page->page : *page;
    FillEntries(shown.entries, read->first_page != nullptr ? read->first_page->names : read->names,
                response.mutable_entries());
    const ResolvedBoard& resolved = read->resolved;
    auto make = [&](char direction, int64_t score, const std::string& subject) {
      return EncodePageToken(PageToken{direction, score, subject, resolved.period.key, resolved.key});
    };
    if (!shown.entries.empty()) {
      if (shown.has_next) {
        response.set_next_page_token(
            make('f', shown.entries.back().score, shown.entries.back().subject_id));
      }
      if (shown.has_prev) {
        response.set_prev_page_token(
            make('b', shown.entries.front().score, shown.entries.front().subject_id));
      }
    } else if (*token) {
      // An empty page (past the end, or before the start): the way back
      // includes the boundary entry itself.
      const PageToken& t = **token;
      bool forward = t.direction == 'f' || t.direction == 'F';
      if (shown.has_prev && forward) response.set_prev_page_token(make('B', t.score, t.subject_id));
      if (shown.has_next && !forward) response.set_next_page_token(make('F', t.score, t.subject_id));
    }
    response.set_period(resolved.period.key);
    FillPeriod(resolved.period, read->board.window(), response.mutable_period_start(),
               response.mutable_period_end());
    response.set_total_entries(shown.total);
    return absl::OkStatus();
  });
  return absl::OkStatus();
}

grpc::ServerUnaryReactor* LeaderboardServiceImpl::GetRank(grpc::CallbackServerContext* context,
                                                          const v1::GetRankRequest* request,
                                                          v1::GetRankResponse* response) {
  return calls_.Serve(context, [this, request, response](Call& call) {
    return StartGetRank(call, *request, *response);
  });
}

absl::Status LeaderboardServiceImpl::StartGetRank(Call& call, const v1::GetRankRequest& request,
                                                  v1::GetRankResponse& response) {
  if (request.neighbors() < 0 || request.neighbors() > kMaxNeighbors) {
    return absl::InvalidArgumentError(
        absl::StrCat("neighbors: ", request.neighbors(), " is not within 0..", kMaxNeighbors));
  }
  if (!ValidId(request.subject_id())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "subject_id: '", request.subject_id(), "' must be 1..64 characters of [A-Za-z0-9._-]"));
  }
  auto read = std::make_shared<BoardRead>();
  read->org = call.principal().org;
  read->board = request.board();
  auto around = std::make_shared<BoardAround>();
  ReadCalendar(call, read);
  call.Then([read]() -> absl::Status {
        absl::StatusOr<ResolvedBoard> resolved = Resolve(*read);
        if (!resolved.ok()) return resolved.status();
        read->resolved = *std::move(resolved);
        return absl::OkStatus();
      })
      .Then([this, &call, read, around, &request](Done done) {
        // One round trip: the script reads the display names of the subject
        // and its neighbors with them.
        store_.AroundAsync(
            read->resolved.key, request.subject_id(), request.neighbors(),
            call.principal().subject, NamesOfTeams(*read) ? NamesFrom::kTeams : NamesFrom::kPeople,
            call.deadline(),
            [read, around, done = std::move(done)](absl::StatusOr<BoardAround> got) mutable {
              if (!got.ok()) return std::move(done)(got.status());
              *around = *std::move(got);
              read->total = around->total;
              read->names = std::move(around->names);
              read->names_read = true;
              std::move(done)(absl::OkStatus());
            });
      });
  CheckEmptyScope(call, read);
  ReadNames(call, read);
  call.Then([read, around, &request, &response]() -> absl::Status {
    response.set_ranked(around->ranked);
    response.set_total_entries(around->total);
    response.set_period(read->resolved.period.key);
    // Built in place (no copies of entries).
    FillEntry(around->ranked ? around->entry : RankedEntry{0, request.subject_id(), 0},
              read->names, response.mutable_entry());
    if (!around->ranked) return absl::OkStatus();
    response.set_percentile(Percentile(around->below_count, around->total));
    FillEntries(around->above, read->names, response.mutable_above());
    FillEntries(around->below, read->names, response.mutable_below());
    return absl::OkStatus();
  });
  return absl::OkStatus();
}

absl::StatusOr<Principal> LeaderboardServiceImpl::CheckWatch(
    grpc::CallbackServerContext& context, const v1::WatchLeaderboardRequest& request) {
  absl::StatusOr<Principal> who = Authenticate(context);
  if (!who.ok()) return who.status();
  int top_n = request.top_n() == 0 ? kDefaultPageSize : request.top_n();
  if (top_n < 1 || top_n > kMaxWatchTopN) {
    return absl::InvalidArgumentError(
        absl::StrCat("top_n: ", request.top_n(), " is not within 1..", kMaxWatchTopN));
  }
  // The board's shape and period syntax; the period's range and the scope's
  // existence need the org's calendar and directory: the hub's first refresh
  // checks them (no Redis read on the callback thread).
  if (!request.board().season_id().empty()) {
    // The season's existence is the hub's first refresh's to check.
    if (!ValidId(request.board().season_id())) {
      return absl::InvalidArgumentError(
          "board.season_id: must be 1..64 characters of [A-Za-z0-9._-]");
    }
    return who;
  }
  absl::StatusOr<ResolvedBoard> resolved =
      ResolveBoard(who->org, request.board(), OrgCalendar(), absl::Now());
  if (!resolved.ok()) return resolved.status();
  return who;
}

void LeaderboardServiceImpl::AddRetryTrailers(grpc::ServerContextBase& context) {
  std::string ms = absl::StrCat(watchers_.limits().retry_after.count());
  context.AddTrailingMetadata(common::auth::kRetryAfterMetadata, ms);
  context.AddTrailingMetadata(common::auth::kRetryPushbackMetadata, ms);
}

grpc::ServerWriteReactor<v1::WatchLeaderboardResponse>* LeaderboardServiceImpl::WatchLeaderboard(
    grpc::CallbackServerContext* context, const v1::WatchLeaderboardRequest* request) {
  int top_n = request->top_n() == 0 ? kDefaultPageSize : request->top_n();
  absl::StatusOr<Principal> who = CheckWatch(*context, *request);
  // One slot among the person's open streams, held by the reactor until the
  // stream is done. Services (the gateway's shared watch) are not charged.
  absl::StatusOr<common::ratelimit::StreamSlots::Slot> slot =
      who.ok() ? auth_.OpenStream(*who) : absl::StatusOr<common::ratelimit::StreamSlots::Slot>(
                                              who.status());
  if (!slot.ok()) {
    if (who.ok() && slot.status().code() == absl::StatusCode::kResourceExhausted) {
      AddRetryTrailers(*context);
    }
    std::shared_ptr<WatchReactor> reactor = WatchReactor::Create(watchers_, "", kDefaultPageSize);
    reactor->Close(ToGrpcStatus(slot.status()));
    return reactor.get();
  }
  std::shared_ptr<WatchReactor> reactor = WatchReactor::Create(
      watchers_, Watchers::HubId(who->org, request->board()), top_n, *std::move(slot));
  WatchReactor* raw = reactor.get();
  absl::Status registered = watchers_.Register(who->org, request->board(), reactor);
  if (!registered.ok()) {
    if (registered.code() == absl::StatusCode::kResourceExhausted) AddRetryTrailers(*context);
    reactor->Close(ToGrpcStatus(registered));
  }
  return raw;
}

// ---------------------------------------------------------------- people

grpc::ServerUnaryReactor* LeaderboardServiceImpl::GetStreaks(grpc::CallbackServerContext* context,
                                                             const v1::GetStreaksRequest* request,
                                                             v1::GetStreaksResponse* response) {
  return calls_.Serve(context, [this, request, response](Call& call) {
    return StartGetStreaks(call, *request, *response);
  });
}

absl::Status LeaderboardServiceImpl::StartGetStreaks(Call& call,
                                                     const v1::GetStreaksRequest& request,
                                                     v1::GetStreaksResponse& response) {
  if (!ValidId(request.person_id())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "person_id: '", request.person_id(), "' must be 1..64 characters of [A-Za-z0-9._-]"));
  }
  auto calendar = std::make_shared<OrgCalendar>();
  auto days = std::make_shared<PersonDays>();
  const std::string& org = call.principal().org;
  call.Then([this, &call, &org, calendar](Done done) {
        store_.CachedCalendarAsync(org, call.deadline(), Into(calendar.get(), std::move(done)));
      })
      .Then([this, &call, &org, days, &request](Done done) {
        store_.PersonDaysAsync(org, request.person_id(), call.deadline(),
                               Into(days.get(), std::move(done)));
      })
      .Then([calendar, days, &request, &response]() -> absl::Status {
        absl::TimeZone zone = calendar->zone;
        if (days->person && !days->person->time_zone().empty()) {
          absl::StatusOr<absl::TimeZone> own =
              common::calendar::LoadZone(days->person->time_zone());
          if (own.ok()) zone = *own;
        }
        absl::CivilDay today = absl::ToCivilDay(absl::Now(), zone);
        WorkCalendar work{calendar->work_days, calendar->holidays, calendar->freezes_per_month};
        bool any = days->person.has_value() || !days->giving.empty() || !days->receiving.empty();
        if (!any) {
          return absl::NotFoundError(
              absl::StrCat("person_id: '", request.person_id(), "' is not known in this org"));
        }
        response.set_person_id(request.person_id());
        for (bool giving : {true, false}) {
          StreakResult streak = ComputeStreak(giving ? days->giving : days->receiving, work, today);
          v1::Streak* out = giving ? response.mutable_giving() : response.mutable_receiving();
          out->set_current_days(streak.current);
          out->set_longest_days(streak.longest);
          out->set_freezes_used(streak.freezes_used);
          if (streak.last_active) FillDate(*streak.last_active, out->mutable_last_active_date());
        }
        return absl::OkStatus();
      });
  return absl::OkStatus();
}

grpc::ServerUnaryReactor* LeaderboardServiceImpl::ListBadges(grpc::CallbackServerContext* context,
                                                             const v1::ListBadgesRequest* request,
                                                             v1::ListBadgesResponse* response) {
  return calls_.Serve(context, [this, request, response](Call& call) {
    return StartListBadges(call, *request, *response);
  });
}

absl::Status LeaderboardServiceImpl::StartListBadges(Call& call,
                                                     const v1::ListBadgesRequest& request,
                                                     v1::ListBadgesResponse& response) {
  if (!ValidId(request.person_id())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "person_id: '", request.person_id(), "' must be 1..64 characters of [A-Za-z0-9._-]"));
  }
  auto badges = std::make_shared<std::map<std::string, int64_t>>();
  call.Then([this, &call, badges, &request](Done done) {
        store_.BadgesAsync(call.principal().org, request.person_id(), call.deadline(),
                           Into(badges.get(), std::move(done)));
      })
      .Then([badges, &response]() -> absl::Status {
        for (const BadgeRule& rule : BadgeRules()) {
          auto it = badges->find(rule.id);
          if (it == badges->end()) continue;
          v1::Badge* badge = response.add_badges();
          badge->set_badge_id(rule.id);
          badge->set_display_name(rule.display_name);
          ToProto(absl::FromUnixMillis(it->second), badge->mutable_earn_time());
        }
        return absl::OkStatus();
      });
  return absl::OkStatus();
}

// ---------------------------------------------------------------- workers

void LeaderboardServiceImpl::OnWorker(Call& call, BlockingWorker& worker,
                                      absl::AnyInvocable<absl::Status() &&> work) {
  call.Then([&worker, work = std::move(work)](Done done) mutable {
    // Shared: a refused task is dropped, and its `done` must still run once.
    auto shared_done = std::make_shared<Done>(std::move(done));
    absl::Status queued = worker.Submit([work = std::move(work), shared_done]() mutable {
      std::move(*shared_done)(std::move(work)());
    });
    if (!queued.ok()) std::move(*shared_done)(queued);
  });
}

// ---------------------------------------------------------------- insights
// services/leaderboard/insights_service.cc: access, arguments and figures.

grpc::ServerUnaryReactor* LeaderboardServiceImpl::GetInsights(
    grpc::CallbackServerContext* context, const v1::GetInsightsRequest* request,
    v1::GetInsightsResponse* response) {
  return calls_.Serve(context, [this, request, response](Call& call) {
    OnWorker(call, *workers_.insights, [this, &call, request, response] {
      return insights_.GetInsights(call.principal(), *request, *response);
    });
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* LeaderboardServiceImpl::ListUnrecognized(
    grpc::CallbackServerContext* context, const v1::ListUnrecognizedRequest* request,
    v1::ListUnrecognizedResponse* response) {
  return calls_.Serve(context, [this, request, response](Call& call) {
    OnWorker(call, *workers_.insights, [this, &call, request, response] {
      return insights_.ListUnrecognized(call.principal(), *request, *response);
    });
    return absl::OkStatus();
  });
}

// ---------------------------------------------------------------- rebuild

absl::Status LeaderboardServiceImpl::DoRebuild(const Principal& who,
                                               v1::RebuildProjectionsResponse& response) {
  KUDOS_CHECK(who.is_admin(), "RebuildProjections checks the role before it queues the rebuild");
  auto started = std::chrono::steady_clock::now();
  // Rebuild holds apply_mutex only for its final swap (other orgs carry on).
  absl::StatusOr<Projector::RebuildResult> result = projector_.Rebuild(who.org);
  if (!result.ok()) return result.status();
  auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - started);
  response.set_events_applied(result->events_applied);
  response.set_duration_ms(elapsed.count());
  absl::StatusOr<common::redis::Reply> audited = store_.pool().Run(common::audit::AppendCommand(
      who.org, who.subject, "leaderboard.rebuild_projections", "lb:{" + who.org + "}:*",
      absl::StrCat("replayed ", result->events_read, " entries, applied ",
                   result->events_applied)));
  if (!audited.ok()) return audited.status();
  common::log::Info(absl::StrCat("leaderboard: rebuilt org '", who.org, "': ",
                                 result->events_applied, " events in ", elapsed.count(), " ms"));
  watchers_.TouchOrg(who.org);
  return absl::OkStatus();
}

grpc::ServerUnaryReactor* LeaderboardServiceImpl::RebuildProjections(
    grpc::CallbackServerContext* context, const v1::RebuildProjectionsRequest* /*request*/,
    v1::RebuildProjectionsResponse* response) {
  return calls_.Serve(context, [this, response](Call& call) -> absl::Status {
    if (!call.principal().is_admin()) {
      return absl::PermissionDeniedError("RebuildProjections is for admins only");
    }
    // Seconds of replay: on the rebuild worker, and the call finishes when
    // it is done (after the last step the call's deadline is not checked).
    OnWorker(call, *workers_.rebuild, [this, &call, response] {
      absl::Status status = DoRebuild(call.principal(), *response);
      if (std::optional<int64_t> retry_after_ms = RetryAfterMs(status)) {
        std::string ms = absl::StrCat(*retry_after_ms);
        call.context().AddTrailingMetadata(common::auth::kRetryAfterMetadata, ms);
        call.context().AddTrailingMetadata(common::auth::kRetryPushbackMetadata, ms);
      }
      return status;
    });
    return absl::OkStatus();
  });
}

}  // namespace leaderboard
