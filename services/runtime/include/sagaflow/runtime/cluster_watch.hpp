#pragma once
/// Notices that the Kafka cluster a running service talks to was replaced by
/// another one at the same address: a broker whose data was wiped and that
/// was formatted again (a new cluster id), as `deployment/docker/compose wipe
/// kafka` does. The new cluster has none of the old one's topics, committed
/// offsets or transactions. A consumer that rejoined its group there before
/// the topics were created again was assigned nothing, and librdkafka only
/// notices the topics at its next metadata refresh (minutes later): the
/// service would sit idle and unhealthy without a word. So a service stops
/// with an error naming both ids instead, and its supervisor (Compose's
/// restart policy, systemd) starts it again, which creates the topics and
/// joins the group properly.
///
/// Every `interval` the watch asks `fetch` for the current cluster id and
/// compares it with the one the service started with; an unreachable broker
/// (a fetch error) is not a change. On the first different id it calls
/// `on_change` once, with the error to stop with, and watches no more.
/// Thread safety: Start and Stop from one thread; `on_change` runs on the
/// watch's own thread.

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "sagaflow/core/result.hpp"

namespace sagaflow::runtime {

class ClusterWatch {
 public:
  using Fetch = std::function<core::Result<std::string>()>;
  using OnChange = std::function<void(const core::Error&)>;

  ClusterWatch(std::string known_id, std::string brokers, Fetch fetch, std::chrono::milliseconds interval,
               OnChange on_change);
  ~ClusterWatch();
  ClusterWatch(const ClusterWatch&) = delete;
  ClusterWatch& operator=(const ClusterWatch&) = delete;

  void Start();
  /// Returns once the watch's thread has ended (at most one fetch later).
  void Stop();

  /// The error a service stops with when `seen` is not `known`; none when equal.
  static std::optional<core::Error> Compare(const std::string& known, const std::string& seen,
                                            const std::string& brokers);

 private:
  void Run();

  std::string known_;
  std::string brokers_;
  Fetch fetch_;
  std::chrono::milliseconds interval_;
  OnChange on_change_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace sagaflow::runtime
