#include "services/kudos/feed_writer.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/check/check.h"
#include "common/grpc/status.h"
#include "services/kudos/kudos_service.h"

namespace kudos {

std::shared_ptr<FeedWriter> FeedWriter::Create(kudos::v1::KudosFilter filter, size_t max_queued,
                                               common::ratelimit::StreamSlots::Slot slot,
                                               Viewer viewer) {
  KUDOS_CHECK(max_queued >= 1, "a feed stream can hold at least one kudos");
  std::shared_ptr<FeedWriter> writer(
      new FeedWriter(std::move(filter), max_queued, std::move(slot), std::move(viewer)));
  writer->self_ = writer;
  return writer;
}

void FeedWriter::Attach(std::unique_ptr<FeedHub::Subscription> subscription) {
  std::unique_lock<std::mutex> lock(mu_);
  if (!done_) {
    subscription_ = std::move(subscription);
    return;
  }
  lock.unlock();
  subscription.reset();  // the stream ended already
}

void FeedWriter::GoLive() {
  Action action = Action::kNothing;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (finish_called_ || close_requested_ || in_flight_op_) {
      action = NextLocked();
    } else {
      in_flight_op_ = true;
    }
  }
  if (action != Action::kNothing) return Act(action);
  StartSendInitialMetadata();
}

void FeedWriter::Close(const grpc::Status& status) {
  Action action;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (finish_called_) return;
    if (!close_requested_) {
      close_requested_ = true;
      close_status_ = status;
    }
    queue_.clear();
    action = NextLocked();
  }
  Act(action);
}

void FeedWriter::Queue(const kudos::v1::KudosEvent& event) {
  if (close_requested_ || !MatchesFilter(event.kudos_sent(), filter_, viewer_)) return;
  kudos::v1::WatchFeedResponse response;
  *response.mutable_kudos() = event.kudos_sent().kudos();
  QueueResponse(std::move(response));
}

void FeedWriter::QueueResponse(kudos::v1::WatchFeedResponse response) {
  if (close_requested_) return;
  if (queue_.size() >= max_queued_) {
    // Dropped rather than waited for: the org's reader serves every stream.
    close_requested_ = true;
    close_status_ = grpc::Status(
        grpc::StatusCode::ABORTED,
        absl::StrCat("this feed stream fell more than ", max_queued_,
                     " kudos behind; reconnect and read what was missed with ListKudos"));
    queue_.clear();
    return;
  }
  queue_.push_back(std::move(response));
}

void FeedWriter::Deliver(const std::vector<SharedEvent>& events) {
  Action action;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (finish_called_) return;
    for (const SharedEvent& event : events) Queue(*event);
    KUDOS_CHECK(queue_.size() <= max_queued_, "a feed stream's queue stays bounded");
    action = NextLocked();
  }
  Act(action);
}

void FeedWriter::DeliverInvitations(const std::vector<SharedInvitation>& invitations) {
  Action action;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (finish_called_) return;
    for (const SharedInvitation& invitation : invitations) {
      kudos::v1::WatchFeedResponse response;
      *response.mutable_invitation() = *invitation;
      QueueResponse(std::move(response));
    }
    KUDOS_CHECK(queue_.size() <= max_queued_, "a feed stream's queue stays bounded");
    action = NextLocked();
  }
  Act(action);
}

void FeedWriter::End(const absl::Status& why) { Close(common::grpc_util::ToGrpcStatus(why)); }

FeedWriter::Action FeedWriter::NextLocked() {
  if (in_flight_op_ || finish_called_) return Action::kNothing;
  if (close_requested_) {
    finish_called_ = true;
    return Action::kFinish;
  }
  if (!live_ || queue_.empty()) return Action::kNothing;
  writing_ = std::move(queue_.front());
  queue_.pop_front();
  in_flight_op_ = true;
  return Action::kWrite;
}

void FeedWriter::Act(Action action) {
  // No lock held: gRPC may run OnWriteDone / OnDone inline.
  if (action == Action::kWrite) StartWrite(&writing_);
  if (action == Action::kFinish) Finish(close_status_);  // fixed once finish_called_ is set
}

void FeedWriter::OnSendInitialMetadataDone(bool ok) {
  Action action;
  {
    std::lock_guard<std::mutex> lock(mu_);
    in_flight_op_ = false;
    live_ = true;
    if (!ok && !close_requested_) {
      close_requested_ = true;
      close_status_ = grpc::Status(grpc::StatusCode::CANCELLED, "stream broken");
    }
    action = NextLocked();
  }
  Act(action);
}

void FeedWriter::OnWriteDone(bool ok) {
  Action action;
  {
    std::lock_guard<std::mutex> lock(mu_);
    in_flight_op_ = false;
    if (!ok && !close_requested_) {
      close_requested_ = true;
      close_status_ = grpc::Status(grpc::StatusCode::CANCELLED, "stream broken");
    }
    action = NextLocked();
  }
  Act(action);
}

void FeedWriter::OnCancel() { Close(grpc::Status(grpc::StatusCode::CANCELLED, "cancelled")); }

void FeedWriter::OnDone() {
  std::unique_ptr<FeedHub::Subscription> subscription;
  {
    std::lock_guard<std::mutex> lock(mu_);
    done_ = true;
    subscription = std::move(subscription_);
  }
  subscription.reset();  // no new deliveries (one under way finds finish_called_)
  std::shared_ptr<FeedWriter> keep = std::move(self_);  // may free this on return
}

}  // namespace kudos
