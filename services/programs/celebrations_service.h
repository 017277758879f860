// programs.v1.CelebrationsService: the gRPC layer (sync handlers; each does
// a few bounded Redis calls and at most two directory calls, with deadlines).
#pragma once

#include <functional>

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/auth/guard.h"
#include "programs/v1/celebrations.grpc.pb.h"
#include "services/programs/celebrations_store.h"
#include "services/programs/celebrations_sweep.h"

namespace programs::celebrations {

using Clock = std::function<absl::Time()>;
using Mutation = std::function<void(v1::CelebrationProfile&)>;

// Reads, mutates and writes a person's profile with its schedules (the next
// celebrations in the directory's zone at `now`), compare-and-set against
// concurrent setters, a few attempts. The answer carries its zone and next
// times. NOT_FOUND when the directory has no such person.
absl::StatusOr<v1::CelebrationProfile> UpdateProfile(CelebrationsStore& store,
                                                     Directory& directory, const std::string& org,
                                                     const std::string& person,
                                                     const Mutation& mutate, absl::Time now);
// The person's profile (empty when none is stored) with its zone and next times.
absl::StatusOr<v1::CelebrationProfile> ReadProfile(CelebrationsStore& store, Directory& directory,
                                                   const std::string& org,
                                                   const std::string& person, absl::Time now);

class CelebrationsServiceImpl final : public v1::CelebrationsService::Service {
 public:
  CelebrationsServiceImpl(common::auth::Guard guard, CelebrationsStore& store,
                          Directory& directory, Clock clock = absl::Now);

  grpc::Status SetBirthday(grpc::ServerContext* context, const v1::SetBirthdayRequest* request,
                           v1::SetBirthdayResponse* response) override;
  grpc::Status SetHireDate(grpc::ServerContext* context, const v1::SetHireDateRequest* request,
                           v1::SetHireDateResponse* response) override;
  grpc::Status SetCelebrationOptOut(grpc::ServerContext* context,
                                    const v1::SetCelebrationOptOutRequest* request,
                                    v1::SetCelebrationOptOutResponse* response) override;
  grpc::Status GetCelebrationProfile(grpc::ServerContext* context,
                                     const v1::GetCelebrationProfileRequest* request,
                                     v1::GetCelebrationProfileResponse* response) override;
  grpc::Status GetCelebrationSettings(grpc::ServerContext* context,
                                      const v1::GetCelebrationSettingsRequest* request,
                                      v1::GetCelebrationSettingsResponse* response) override;
  grpc::Status UpdateCelebrationSettings(grpc::ServerContext* context,
                                         const v1::UpdateCelebrationSettingsRequest* request,
                                         v1::UpdateCelebrationSettingsResponse* response) override;
  grpc::Status ListCelebrations(grpc::ServerContext* context,
                                const v1::ListCelebrationsRequest* request,
                                v1::ListCelebrationsResponse* response) override;

 private:
  absl::StatusOr<v1::CelebrationProfile> Update(const std::string& org, const std::string& person,
                                                const Mutation& mutate) {
    return UpdateProfile(store_, directory_, org, person, mutate, clock_());
  }

  common::auth::Guard guard_;
  CelebrationsStore& store_;
  Directory& directory_;
  Clock clock_;
};

}  // namespace programs::celebrations
