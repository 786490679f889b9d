// GlobalView against the real broker: a view of every partition of a
// compacted topic written by transactions (so markers follow the records),
// aborted records never seen, CatchUp after a commit sees it.

#include "sagaflow/runtime/global_view.hpp"

#include <gtest/gtest.h>

#include <map>
#include <mutex>

#include "support/kafka_env.hpp"
#include "support/temp_dir.hpp"

namespace sagaflow::runtime {
namespace {

using namespace std::chrono_literals;

class GlobalViewBroker : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(kafka::WaitForBroker(config_, 30s).ok()) << "no broker at " << config_.brokers;
    prefix_ = sagaflow::testing::UniquePrefix("view");
    topic_ = prefix_ + "table";
    ASSERT_TRUE(kafka::CreateTopics(config_, {{topic_, 3, true, false}}, 30s).ok());
    auto producer = kafka::TransactionalProducer::Open(config_, prefix_ + "tx", 30s);
    ASSERT_TRUE(producer.ok()) << producer.error().message;
    producer_ = std::move(producer.value());
    auto store = eventstore::ProjectionStore::Open(dir_.path() / "db");
    ASSERT_TRUE(store.ok()) << store.error().message;
    store_ = std::move(store.value());
  }

  // Where each committed record landed, in produce order (empty when aborted).
  std::vector<kafka::Delivered> Commit(const std::vector<std::pair<std::string, std::string>>& records,
                                       bool abort = false) {
    std::vector<kafka::Delivered> landed;
    CommitInto(records, abort, landed);
    return landed;
  }

  void CommitInto(const std::vector<std::pair<std::string, std::string>>& records, bool abort,
                  std::vector<kafka::Delivered>& landed) {
    ASSERT_TRUE(producer_->Begin().ok());
    for (const auto& [k, v] : records) ASSERT_TRUE(producer_->Produce(topic_, k, v).ok());
    if (abort) {
      ASSERT_TRUE(producer_->Abort().ok());
    } else {
      auto d = producer_->Commit();
      ASSERT_TRUE(d.ok()) << d.error().message;
      // CatchUp promises what was committed before it, as readers see it:
      // once the commit's markers are written.
      ASSERT_TRUE(sagaflow::testing::WaitVisible(config_, *d)) << "the commit's markers never became visible";
      landed = *d;
    }
  }

  kafka::KafkaConfig config_ = sagaflow::testing::TestKafka();
  sagaflow::testing::TempDir dir_{"sagaflow-view"};
  std::string prefix_;
  std::string topic_;
  std::unique_ptr<kafka::TransactionalProducer> producer_;
  std::unique_ptr<eventstore::ProjectionStore> store_;
};

TEST_F(GlobalViewBroker, SeesEveryPartitionsCommittedRecordsAndCatchesUpPastTransactionMarkers) {
  std::vector<std::pair<std::string, std::string>> first;
  for (int i = 0; i < 30; ++i) first.emplace_back("k" + std::to_string(i), "v" + std::to_string(i));
  ASSERT_NO_FATAL_FAILURE((void)Commit(first));
  ASSERT_NO_FATAL_FAILURE((void)Commit({{"k1", "aborted"}, {"k99", "aborted"}}, /*abort=*/true));

  std::mutex mu;
  size_t applied = 0;
  GlobalViewOptions o;
  o.kafka = config_;
  o.topic = topic_;
  o.table = "t";
  o.on_applied = [&](const std::vector<kafka::Record>& records) {
    std::lock_guard lock(mu);
    applied += records.size();
  };
  GlobalView view(o, *store_);
  ASSERT_TRUE(view.Start().ok());
  auto s = view.CatchUp(30s);
  ASSERT_TRUE(s.ok()) << s.error().message;
  for (int i = 0; i < 30; ++i) EXPECT_EQ(view.Get("k" + std::to_string(i)), "v" + std::to_string(i));
  EXPECT_EQ(view.Get("k99"), std::nullopt);
  size_t scanned = 0;
  view.Scan("", [&](std::string_view, std::string_view) { return ++scanned > 0; });
  EXPECT_EQ(scanned, 30u);

  // A commit after the view started: CatchUp returns once the view holds it.
  ASSERT_NO_FATAL_FAILURE((void)Commit({{"k1", "new"}, {"k2", ""}}));
  s = view.CatchUp(30s, kafka::PartitionOf("k1", 3));
  ASSERT_TRUE(s.ok()) << s.error().message;
  EXPECT_EQ(view.Get("k1"), "new");
  s = view.CatchUp(30s);
  ASSERT_TRUE(s.ok()) << s.error().message;
  EXPECT_EQ(view.Get("k2"), std::nullopt);
  std::lock_guard lock(mu);
  EXPECT_EQ(applied, 32u);
}

// The tail's answer to "which of these offsets are records": the end of the
// last committed record, whatever markers and aborted records follow it.
TEST_F(GlobalViewBroker, TheTailTellsWhereTheCommittedRecordsEndPastMarkersAndAbortedRecords) {
  std::vector<kafka::Delivered> landed;
  ASSERT_NO_FATAL_FAILURE(landed = Commit({{"a", "1"}, {"b", "2"}, {"c", "3"}, {"d", "4"}}));
  ASSERT_NO_FATAL_FAILURE((void)Commit({{"a", "x"}, {"b", "x"}, {"c", "x"}, {"d", "x"}}, /*abort=*/true));
  std::map<int32_t, int64_t> last_record_end;
  for (const auto& d : landed) last_record_end[d.partition] = std::max(last_record_end[d.partition], d.offset + 1);

  auto tail = kafka::TopicTail::Open(config_, topic_, {});
  ASSERT_TRUE(tail.ok()) << tail.error().message;
  auto ends = tail.value()->EndOffsets();
  ASSERT_TRUE(ends.ok()) << ends.error().message;
  kafka::OffsetMap from;
  for (const auto& [tp, end] : ends.value()) from[tp] = 0;
  // Twice from the same offsets: each call reads its gap anew.
  for (int round = 0; round < 2; ++round) {
    auto record_ends = tail.value()->CommittedRecordEnds(from, ends.value(), 30s);
    ASSERT_TRUE(record_ends.ok()) << record_ends.error().message;
    for (const auto& [tp, end] : ends.value()) {
      const int64_t want = last_record_end.count(tp.partition) ? last_record_end[tp.partition] : 0;
      EXPECT_EQ(record_ends.value().at(tp), want) << "partition " << tp.partition << ", round " << round;
      if (want > 0) EXPECT_GT(end, want) << "markers follow the records";
    }
  }
  // From the end of the records on there are only markers: nothing to read.
  kafka::OffsetMap at_records_end;
  for (const auto& [p, end] : last_record_end) at_records_end[{topic_, p}] = end;
  auto none = tail.value()->CommittedRecordEnds(at_records_end, ends.value(), 30s);
  ASSERT_TRUE(none.ok()) << none.error().message;
  for (const auto& [tp, end] : at_records_end) EXPECT_EQ(none.value().at(tp), end);
}

}  // namespace
}  // namespace sagaflow::runtime
