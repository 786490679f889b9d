// LocalQueue: the hand-over of work from HTTP threads to a partition's task,
// closed while the task is not on this instance.

#include <gtest/gtest.h>

#include "sagaflow/runtime/service.hpp"

namespace sagaflow::runtime {
namespace {

using Queue = LocalQueue<std::string, int>;

TEST(LocalQueue, AClosedQueueRefusesWorkAndLeavesItToTheCaller) {
  Queue queue(/*open=*/false);
  std::string work = "order-1";
  EXPECT_FALSE(queue.TryPush(work));
  EXPECT_EQ(work, "order-1");  // untouched: the caller sends it elsewhere
  EXPECT_TRUE(queue.Drain().empty());
}

TEST(LocalQueue, ClosingHandsBackWhatIsQueuedInOrderAndRefusesMore) {
  Queue queue(/*open=*/false);
  queue.Open();
  for (std::string w : {"a", "b", "c"}) ASSERT_TRUE(queue.TryPush(w));
  auto taken = queue.Drain();
  ASSERT_EQ(taken.size(), 3u);
  // An aborted iteration puts its items back before the task leaves.
  queue.Requeue({std::move(taken[1]), std::move(taken[2])});
  std::string late = "d";
  ASSERT_TRUE(queue.TryPush(late));
  auto left = queue.Close();
  ASSERT_EQ(left.size(), 3u);
  EXPECT_EQ(left[0].request, "b");
  EXPECT_EQ(left[1].request, "c");
  EXPECT_EQ(left[2].request, "d");
  std::string after = "e";
  EXPECT_FALSE(queue.TryPush(after));
  EXPECT_FALSE(queue.open());
  queue.Open();  // the partition came back
  EXPECT_TRUE(queue.TryPush(after));
}

}  // namespace
}  // namespace sagaflow::runtime
