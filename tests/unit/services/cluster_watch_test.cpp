// ClusterWatch: a running service stops when the Kafka cluster at its
// address is replaced (a wiped broker formatted again), and only then.

#include <gtest/gtest.h>

#include <atomic>
#include <deque>
#include <future>

#include "sagaflow/runtime/cluster_watch.hpp"

namespace sagaflow::runtime {
namespace {

using namespace std::chrono_literals;

// Answers the fetches with `answers` in order, then repeats the last one.
class Answers {
 public:
  explicit Answers(std::deque<core::Result<std::string>> answers) : answers_(std::move(answers)) {}
  core::Result<std::string> Next() {
    std::lock_guard lock(mu_);
    ++fetches_;
    auto next = answers_.front();
    if (answers_.size() > 1) answers_.pop_front();
    return next;
  }
  int fetches() {
    std::lock_guard lock(mu_);
    return fetches_;
  }

 private:
  std::mutex mu_;
  std::deque<core::Result<std::string>> answers_;
  int fetches_ = 0;
};

core::Error Unreachable() { return core::Error{core::Errc::kUnavailable, "no broker", true}; }

TEST(ClusterWatch, ANewClusterIdIsReportedOnceWithBothIds) {
  Answers answers({std::string("old-id"), Unreachable(), std::string("old-id"), std::string("new-id")});
  std::promise<core::Error> reported;
  std::atomic<int> calls{0};
  ClusterWatch watch("old-id", "127.0.0.1:9092", [&] { return answers.Next(); }, 1ms, [&](const core::Error& e) {
    if (calls.fetch_add(1) == 0) reported.set_value(e);
  });
  watch.Start();
  auto future = reported.get_future();
  ASSERT_EQ(future.wait_for(10s), std::future_status::ready);
  const auto error = future.get();
  EXPECT_NE(error.message.find("cluster id old-id, now new-id"), std::string::npos) << error.message;
  EXPECT_NE(error.message.find("127.0.0.1:9092"), std::string::npos) << error.message;
  EXPECT_FALSE(error.retryable);
  // The watch ended after reporting: no more fetches, no second report.
  watch.Stop();
  const int fetches = answers.fetches();
  EXPECT_EQ(fetches, 4);
  EXPECT_EQ(calls.load(), 1);
}

TEST(ClusterWatch, AnUnreachableOrUnchangedClusterIsNoChange) {
  Answers answers({std::string("same-id"), Unreachable(), Unreachable(), std::string("same-id")});
  std::atomic<int> calls{0};
  ClusterWatch watch("same-id", "127.0.0.1:9092", [&] { return answers.Next(); }, 1ms,
                     [&](const core::Error&) { calls.fetch_add(1); });
  watch.Start();
  // Many fetches pass, past all the answers, without a report.
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (answers.fetches() < 50 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(1ms);
  watch.Stop();
  EXPECT_GE(answers.fetches(), 50);
  EXPECT_EQ(calls.load(), 0);
}

TEST(ClusterWatch, StopEndsTheWatchWithoutWaitingForTheInterval) {
  Answers answers({std::string("id")});
  ClusterWatch watch("id", "127.0.0.1:9092", [&] { return answers.Next(); }, 1h, [](const core::Error&) {});
  watch.Start();
  auto stopped = std::async(std::launch::async, [&] { watch.Stop(); });
  ASSERT_EQ(stopped.wait_for(10s), std::future_status::ready) << "Stop waited for the hour-long interval";
  EXPECT_EQ(answers.fetches(), 0);
}

TEST(ClusterWatch, CompareNamesNoChangeForTheSameId) {
  EXPECT_FALSE(ClusterWatch::Compare("a", "a", "b:1").has_value());
  EXPECT_TRUE(ClusterWatch::Compare("a", "b", "b:1").has_value());
}

}  // namespace
}  // namespace sagaflow::runtime
