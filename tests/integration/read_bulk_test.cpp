// kafka::ReadBulk against the real broker: every committed record once, in
// offset order per partition, none of an aborted transaction, from given
// offsets, and the same next offsets ReadToEnd returns.

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "sagaflow/core/kafka/kafka_client.hpp"
#include "support/kafka_env.hpp"

namespace sagaflow::kafka {
namespace {

using namespace std::chrono_literals;

TEST(ReadBulk, ReadsEveryCommittedRecordOnceAndResumesFromOffsets) {
  const auto config = testing::TestKafka();
  const std::string prefix = testing::UniquePrefix("bulk");
  const std::string topic = prefix + "events";
  ASSERT_TRUE(CreateTopics(config, {{topic, 3, false, false}}, 30s).ok());
  auto producer = TransactionalProducer::Open(config, prefix + "tx", 30s);
  ASSERT_TRUE(producer.ok()) << producer.error().message;
  auto& p = *producer.value();
  // The aborted transaction first: once the committed one after it is
  // visible (its markers written), the aborted one is settled too, and the
  // partitions' ends no longer move.
  ASSERT_TRUE(p.Begin().ok());
  ASSERT_TRUE(p.Produce(topic, "1", "aborted").ok());
  ASSERT_TRUE(p.Abort().ok());
  ASSERT_TRUE(p.Begin().ok());
  for (int i = 0; i < 3000; ++i) ASSERT_TRUE(p.Produce(topic, std::to_string(i % 50), "v" + std::to_string(i)).ok());
  auto delivered = p.Commit();
  ASSERT_TRUE(delivered.ok()) << delivered.error().message;
  ASSERT_TRUE(testing::WaitVisible(config, *delivered)) << "the commit's markers never became visible";

  std::map<int32_t, std::vector<int64_t>> offsets;
  std::map<std::string, int> values;
  int64_t last_progress = 0;
  auto next = ReadBulk(
      config, topic, {},
      [&](std::span<const RecordView> batch) {
        for (const auto& r : batch) {
          offsets[r.partition].push_back(r.offset);
          ++values[std::string(r.value)];
        }
      },
      [&](int64_t read, int64_t expected) {
        EXPECT_GE(read, last_progress);
        EXPECT_LE(read, expected);
        last_progress = read;
      });
  ASSERT_TRUE(next.ok()) << next.error().message;
  EXPECT_EQ(values.size(), 3000u);
  EXPECT_EQ(values.count("aborted"), 0u);
  for (const auto& [value, count] : values) EXPECT_EQ(count, 1) << value;
  for (const auto& [partition, list] : offsets) EXPECT_TRUE(std::is_sorted(list.begin(), list.end()));
  EXPECT_EQ(last_progress, 3000);

  auto reference = ReadToEnd(config, topic, {}, [](const Record&) {});
  ASSERT_TRUE(reference.ok());
  EXPECT_EQ(next.value(), reference.value());

  // From the next offsets: nothing more.
  int64_t again = 0;
  auto resumed = ReadBulk(config, topic, next.value(), [&](std::span<const RecordView> b) { again += b.size(); });
  ASSERT_TRUE(resumed.ok());
  EXPECT_EQ(again, 0);
}

}  // namespace
}  // namespace sagaflow::kafka
