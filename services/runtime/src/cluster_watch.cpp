#include "sagaflow/runtime/cluster_watch.hpp"

namespace sagaflow::runtime {

ClusterWatch::ClusterWatch(std::string known_id, std::string brokers, Fetch fetch,
                           std::chrono::milliseconds interval, OnChange on_change)
    : known_(std::move(known_id)),
      brokers_(std::move(brokers)),
      fetch_(std::move(fetch)),
      interval_(interval),
      on_change_(std::move(on_change)) {}

ClusterWatch::~ClusterWatch() { Stop(); }

void ClusterWatch::Start() {
  std::lock_guard lock(mu_);
  if (thread_.joinable()) return;
  stop_ = false;
  thread_ = std::thread([this] { Run(); });
}

void ClusterWatch::Stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

std::optional<core::Error> ClusterWatch::Compare(const std::string& known, const std::string& seen,
                                                 const std::string& brokers) {
  if (seen == known) return std::nullopt;
  return core::Error{core::Errc::kUnavailable,
                     "the Kafka cluster at " + brokers + " is another one now (cluster id " + known + ", now " +
                         seen +
                         "): its data was wiped or a different cluster answers there, so the topics, the group's "
                         "offsets and the transactions this service ran on are gone; stopping so that it is "
                         "started again against the new cluster (it then creates its topics and rejoins)",
                     false};
}

void ClusterWatch::Run() {
  std::unique_lock lock(mu_);
  while (!stop_) {
    if (cv_.wait_for(lock, interval_, [this] { return stop_; })) return;
    lock.unlock();
    auto seen = fetch_();
    std::optional<core::Error> change;
    if (seen.ok()) change = Compare(known_, seen.value(), brokers_);
    lock.lock();
    if (change && !stop_) {
      lock.unlock();
      on_change_(*change);
      return;
    }
  }
}

}  // namespace sagaflow::runtime
