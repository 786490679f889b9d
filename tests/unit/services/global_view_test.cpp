// GlobalView against an in-memory topic: the fold of every partition, its
// index, restart from the stored offsets, and CatchUp waiting for what was
// committed before it (including markers past the last record).

#include "sagaflow/runtime/global_view.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <mutex>
#include <thread>

#include "support/temp_dir.hpp"

namespace sagaflow::runtime {
namespace {

using namespace std::chrono_literals;
using ::sagaflow::testing::TempDir;

// A topic in memory. `end` of a partition may exceed its last record + 1, as
// transaction markers make it on a real broker.
struct MemoryTopic {
  std::mutex mu;
  std::string name = "t";
  std::map<int32_t, std::vector<kafka::Record>> records;
  std::map<int32_t, int64_t> end;
  std::atomic<bool> broken{false};
  // Poll does not move past the markers after a partition's last record (a
  // real reader does so only when a fetch comes back empty, late on a quiet topic).
  std::atomic<bool> late_ends{false};
  // Poll hands out nothing (records committed but not fetched yet).
  std::atomic<bool> held{false};
  std::atomic<int> asked{0};  // CommittedRecordEnds calls

  void Append(int32_t partition, std::string key, std::string value, int64_t markers = 0) {
    std::lock_guard lock(mu);
    kafka::Record r;
    r.topic = name;
    r.partition = partition;
    r.offset = end[partition];
    r.key = std::move(key);
    r.value = std::move(value);
    records[partition].push_back(r);
    end[partition] = r.offset + 1 + markers;
  }
};

class MemoryTail final : public kafka::TopicTail {
 public:
  MemoryTail(MemoryTopic& topic, const kafka::OffsetMap& start) : topic_(topic) {
    std::lock_guard lock(topic_.mu);
    for (const auto& [p, end] : topic_.end) {
      auto it = start.find({topic_.name, p});
      next_[p] = it == start.end() ? 0 : it->second;
    }
  }

  std::vector<kafka::Record> Poll(size_t max_records, std::chrono::milliseconds timeout,
                                  kafka::OffsetMap& positions) override {
    std::vector<kafka::Record> out;
    std::unique_lock lock(topic_.mu);
    // `held` is read under the topic's lock: a record appended after it was
    // set is never handed out by a Poll that started before.
    if (!topic_.held.load()) {
      for (auto& [p, next] : next_) {
        for (const auto& r : topic_.records[p]) {
          if (r.offset >= next && out.size() < max_records) {
            out.push_back(r);
            next = r.offset + 1;
          }
        }
        if (!topic_.late_ends.load() && next < topic_.end[p] &&
            (topic_.records[p].empty() || topic_.records[p].back().offset < next)) {
          next = topic_.end[p];  // only markers left: the end of the partition
        }
        positions[{topic_.name, p}] = next;
      }
    }
    lock.unlock();
    if (out.empty()) std::this_thread::sleep_for(std::min(timeout, std::chrono::milliseconds(5)));
    return out;
  }

  core::Result<kafka::OffsetMap> EndOffsets() override {
    if (topic_.broken.load()) return core::Error{core::Errc::kUnavailable, "broker away", true};
    std::lock_guard lock(topic_.mu);
    kafka::OffsetMap out;
    for (const auto& [p, end] : topic_.end) out[{topic_.name, p}] = end;
    return out;
  }

  core::Result<kafka::OffsetMap> CommittedRecordEnds(const kafka::OffsetMap& from, const kafka::OffsetMap& ends,
                                                     std::chrono::milliseconds) override {
    ++topic_.asked;
    std::lock_guard lock(topic_.mu);
    kafka::OffsetMap out;
    for (const auto& [tp, offset] : from) {
      out[tp] = offset;
      for (const auto& r : topic_.records[tp.partition]) {
        if (r.offset >= offset && r.offset < ends.at(tp)) out[tp] = r.offset + 1;
      }
    }
    return out;
  }

 private:
  MemoryTopic& topic_;
  std::map<int32_t, int64_t> next_;
};

class GlobalViewTest : public ::testing::Test {
 protected:
  void SetUp() override {
    topic_.end[0] = 0;
    topic_.end[1] = 0;
    auto store = eventstore::ProjectionStore::Open(dir_.path() / "db");
    ASSERT_TRUE(store.ok()) << store.error().message;
    store_ = std::move(store.value());
  }

  std::unique_ptr<GlobalView> MakeView(std::function<void(const std::vector<kafka::Record>&)> on_applied = {}) {
    GlobalViewOptions o;
    o.topic = topic_.name;
    o.table = "g";
    o.index = [](const kafka::Record& r, eventstore::WriteSet& out) {
      if (!r.value.empty()) out.Put("by-value/" + r.value, r.key);
    };
    o.on_applied = std::move(on_applied);
    o.tail_factory = [this](const kafka::KafkaConfig&, const std::string&, const kafka::OffsetMap& start) {
      ++opened_;
      last_start_ = start;
      return core::Result<std::unique_ptr<kafka::TopicTail>>(std::make_unique<MemoryTail>(topic_, start));
    };
    return std::make_unique<GlobalView>(std::move(o), *store_);
  }

  TempDir dir_{"sagaflow-global-view"};
  MemoryTopic topic_;
  std::unique_ptr<eventstore::ProjectionStore> store_;
  int opened_ = 0;
  kafka::OffsetMap last_start_;
};

TEST_F(GlobalViewTest, HoldsTheLatestValueOfEveryKeyOfEveryPartitionAfterCatchUp) {
  topic_.Append(0, "a", "1");
  topic_.Append(1, "b", "2", /*markers=*/1);
  topic_.Append(0, "a", "3");
  topic_.Append(1, "c", "4");
  topic_.Append(1, "c", "");  // a tombstone deletes
  auto view = MakeView();
  ASSERT_TRUE(view->Start().ok());
  auto s = view->CatchUp(5s);
  ASSERT_TRUE(s.ok()) << s.error().message;
  EXPECT_EQ(view->Get("a"), "3");
  EXPECT_EQ(view->Get("b"), "2");
  EXPECT_EQ(view->Get("c"), std::nullopt);
  std::vector<std::string> keys;
  view->Scan("", [&](std::string_view k, std::string_view) {
    keys.emplace_back(k);
    return true;
  });
  EXPECT_EQ(keys, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(store_->Get("by-value/3"), "a");  // the index is written with the record
}

TEST_F(GlobalViewTest, CatchUpWaitsForRecordsCommittedBeforeItAndSeesThemInTheCallbackOrder) {
  std::mutex mu;
  std::vector<std::string> applied;
  auto view = MakeView([&](const std::vector<kafka::Record>& records) {
    std::lock_guard lock(mu);
    for (const auto& r : records) applied.push_back(r.key + "=" + r.value);
  });
  ASSERT_TRUE(view->Start().ok());
  ASSERT_TRUE(view->CatchUp(5s).ok());
  topic_.Append(1, "late", "x", /*markers=*/1);
  auto s = view->CatchUp(5s, 1);
  ASSERT_TRUE(s.ok()) << s.error().message;
  EXPECT_EQ(view->Get("late"), "x");
  std::lock_guard lock(mu);
  EXPECT_EQ(applied, (std::vector<std::string>{"late=x"}));
}

TEST_F(GlobalViewTest, CatchUpAsksWhichOffsetsAreRecordsInsteadOfReadingPastTheMarkers) {
  topic_.late_ends.store(true);
  topic_.Append(0, "a", "1", /*markers=*/1);
  topic_.Append(1, "b", "2", /*markers=*/1);
  auto view = MakeView();
  ASSERT_TRUE(view->Start().ok());
  auto s = view->CatchUp(5s);
  ASSERT_TRUE(s.ok()) << s.error().message;
  EXPECT_EQ(view->Get("a"), "1");
  EXPECT_EQ(view->Get("b"), "2");
  EXPECT_GE(topic_.asked.load(), 1);
}

TEST_F(GlobalViewTest, CatchUpStillWaitsForARecordTheViewHasNotReadYet) {
  topic_.late_ends.store(true);
  auto view = MakeView();
  ASSERT_TRUE(view->Start().ok());
  ASSERT_TRUE(view->CatchUp(5s).ok());
  topic_.held.store(true);
  topic_.Append(1, "late", "x", /*markers=*/1);
  auto waited = view->CatchUp(300ms);
  ASSERT_FALSE(waited.ok());
  EXPECT_EQ(waited.error().code, core::Errc::kTimeout);
  topic_.held.store(false);
  auto s = view->CatchUp(5s);
  ASSERT_TRUE(s.ok()) << s.error().message;
  EXPECT_EQ(view->Get("late"), "x");
}

TEST_F(GlobalViewTest, GoesOnFromItsStoredOffsetsAfterARestart) {
  topic_.Append(0, "a", "1");
  topic_.Append(1, "b", "2");
  {
    auto view = MakeView();
    ASSERT_TRUE(view->Start().ok());
    ASSERT_TRUE(view->CatchUp(5s).ok());
  }
  topic_.Append(1, "b", "5");
  auto view = MakeView();
  ASSERT_TRUE(view->Start().ok());
  EXPECT_EQ(last_start_.at({"t", 0}), 1);
  EXPECT_EQ(last_start_.at({"t", 1}), 1);
  ASSERT_TRUE(view->CatchUp(5s).ok());
  EXPECT_EQ(view->Get("b"), "5");
  EXPECT_EQ(view->Get("a"), "1");
}

TEST_F(GlobalViewTest, CatchUpFailsRetryablyWhenTheEndCannotBeReadOrTheViewIsStopped) {
  auto view = MakeView();
  auto before = view->CatchUp(100ms);
  ASSERT_FALSE(before.ok());
  EXPECT_TRUE(before.error().retryable);
  ASSERT_TRUE(view->Start().ok());
  topic_.broken.store(true);
  auto s = view->CatchUp(100ms);
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(s.error().retryable);
  topic_.broken.store(false);
  view->Stop();
  EXPECT_FALSE(view->CatchUp(100ms).ok());
}

}  // namespace
}  // namespace sagaflow::runtime
