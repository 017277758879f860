// The server side of one WatchFeed stream, as a gRPC callback reactor: it
// holds no handler thread while it waits. The org's feed reader delivers
// kudos to it (FeedSink); it keeps those matching the stream's filter in a
// bounded queue and writes them one at a time.
//
// Owned by shared pointers: the hub (while subscribed) and the reactor itself
// until OnDone, so a delivery racing the end of the stream finds it alive.
// gRPC may run callbacks inline in StartWrite / Finish, so those are called
// with no lock held.
#pragma once

#include <grpcpp/grpcpp.h>

#include <deque>
#include <memory>
#include <mutex>

#include "common/ratelimit/rate_limit.h"
#include "kudos/v1/kudos.pb.h"
#include "services/kudos/feed_hub.h"
#include "services/kudos/kudos_rules.h"

namespace kudos {

class FeedWriter : public grpc::ServerWriteReactor<kudos::v1::WatchFeedResponse>,
                   public FeedSink {
 public:
  // `slot` is the person's stream slot, held until the stream is done.
  // `viewer` (issue 18): a private kudos goes only to its giver and
  // recipients; a service or screen (no person) gets public kudos only.
  static std::shared_ptr<FeedWriter> Create(kudos::v1::KudosFilter filter, size_t max_queued,
                                            common::ratelimit::StreamSlots::Slot slot = {},
                                            Viewer viewer = {});

  // Keeps the subscription until the stream is done (drops it at once if
  // the stream is already done).
  void Attach(std::unique_ptr<FeedHub::Subscription> subscription);
  // Sends the response headers: from then on the client knows the watch is
  // live. Writes wait for them.
  void GoLive();
  // Ends the stream (after the operation in flight, if any).
  void Close(const grpc::Status& status);

  // FeedSink
  void Deliver(const std::vector<SharedEvent>& events) override;
  // Feedback invitations the hub already filtered for this stream's caller:
  // queued as they come, whatever the kudos filter.
  void DeliverInvitations(const std::vector<SharedInvitation>& invitations) override;
  void End(const absl::Status& why) override;

  // grpc::ServerWriteReactor
  void OnSendInitialMetadataDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

 private:
  FeedWriter(kudos::v1::KudosFilter filter, size_t max_queued,
             common::ratelimit::StreamSlots::Slot slot, Viewer viewer)
      : filter_(std::move(filter)),
        viewer_(std::move(viewer)),
        max_queued_(max_queued),
        slot_(std::move(slot)) {}
  // What to do next once nothing is in flight; with mu_ held.
  enum class Action { kNothing, kWrite, kFinish };
  Action NextLocked();
  void Act(Action action);
  void Queue(const kudos::v1::KudosEvent& event);  // with mu_ held
  void QueueResponse(kudos::v1::WatchFeedResponse response);  // with mu_ held

  const kudos::v1::KudosFilter filter_;
  const Viewer viewer_;
  const size_t max_queued_;
  common::ratelimit::StreamSlots::Slot slot_;  // released when the writer is freed
  std::shared_ptr<FeedWriter> self_;

  std::mutex mu_;
  std::unique_ptr<FeedHub::Subscription> subscription_;
  bool live_ = false;         // headers sent
  bool in_flight_op_ = false;  // headers or a write in flight
  bool finish_called_ = false;
  bool done_ = false;
  bool close_requested_ = false;
  grpc::Status close_status_;
  std::deque<kudos::v1::WatchFeedResponse> queue_;
  kudos::v1::WatchFeedResponse writing_;
};

}  // namespace kudos
