// Two instances with the same transactional id (a zombie and its replacement):
// the newer one fences the older, which stops instead of writing, and the
// sagas carry on through the newer one.

#include <gtest/gtest.h>

#include "sagaflow/orchestrator/orchestrator_service.hpp"
#include "support/kafka_env.hpp"
#include "support/test_system.hpp"

namespace sagaflow::testing {
namespace {

using namespace std::chrono_literals;

class Fencing : public SystemTest {};

TEST_F(Fencing, ASecondOrchestratorWithTheSameInstanceIdFencesTheFirst) {
  ASSERT_NO_FATAL_FAILURE(Boot());
  auto& sys = *system_;
  const auto first = sys.WaitForFinal(sys.PlaceOrder(), 30s);
  ASSERT_EQ(first.value("status", 0), 3) << first.dump(2);

  TempDir twin_dir("fencing");
  runtime::ServiceOptions twin_options;
  twin_options.brokers = sys.kafka().brokers;
  twin_options.topic_prefix = sys.prefix();
  twin_options.partitions = sys.options().partitions;
  twin_options.data_dir = (twin_dir.path() / "orchestrator").string();
  twin_options.instance_id = "0";  // the same transactional id as the running orchestrator
  auto twin = orchestrator::MakeOrchestrator(twin_options, {});
  auto started = twin->Start();
  ASSERT_TRUE(started.ok()) << started.error().message;

  // The old instance learns it was fenced at its next transaction, and stops.
  const auto second_id = sys.PlaceOrder();
  ASSERT_TRUE(WaitFor(
      [&] {
        auto health = sys.Get("orchestrator", "/");
        return health.status == 503 && health.json.value("status", "") == "stopped";
      },
      60s))
      << "the fenced orchestrator kept running";
  // The newer instance finishes the saga (it rebuilt the earlier one from the snapshots).
  const auto second = sys.WaitForFinal(second_id, 60s);
  EXPECT_EQ(second.value("status", 0), 3) << second.dump(2);
  EXPECT_EQ(sys.ReadTopicByKey(sys.topics().payment_payments)[std::to_string(second_id)].size(), 1u);
  twin->Stop();
  EXPECT_TRUE(twin->Done());
}

}  // namespace
}  // namespace sagaflow::testing
