#include <gtest/gtest.h>

#include <string>

#include "sagaflow/core/kafka/kafka_client.hpp"

namespace sagaflow::kafka {
namespace {

// Values of the Java client's Utils.murmur2, which Kafka's default
// partitioner and librdkafka's murmur2 partitioners use.
TEST(PartitionOf, MatchesKafkasMurmur2) {
  auto positive = [](int32_t h) { return static_cast<int64_t>(static_cast<uint32_t>(h) & 0x7fffffffu); };
  constexpr int32_t kBig = 0x7fffffff;
  EXPECT_EQ(PartitionOf("21", kBig), positive(-973932308) % kBig);
  EXPECT_EQ(PartitionOf("foobar", kBig), positive(-790332482) % kBig);
  EXPECT_EQ(PartitionOf("a-little-bit-long-string", kBig), positive(-985981536) % kBig);
  EXPECT_EQ(PartitionOf("a-little-bit-longer-string", kBig), positive(-1486304829) % kBig);
  EXPECT_EQ(PartitionOf("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", kBig), positive(-58897971) % kBig);
  EXPECT_EQ(PartitionOf("abc", kBig), positive(479470107) % kBig);
}

TEST(PartitionOf, StaysWithinThePartitionCount) {
  for (int i = 0; i < 1000; ++i) {
    const auto p = PartitionOf(std::to_string(i), 3);
    EXPECT_GE(p, 0);
    EXPECT_LT(p, 3);
  }
}

}  // namespace
}  // namespace sagaflow::kafka
