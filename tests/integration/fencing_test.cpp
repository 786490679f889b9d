// Partition-owned tasks across instances: a second instance of a service takes
// over some partitions (the new owner restores each task's state first), with
// the instance's shared producer (fenced by the group generation) and with a
// producer per task (each task's new owner fences the old one); a zombie
// writing with a transactional id is fenced rather than allowed to write twice.

#include <gtest/gtest.h>

#include "sagaflow/core/kafka/kafka_client.hpp"
#include "sagaflow/orchestrator/orchestrator_service.hpp"
#include "sagaflow/payment/payment_service.hpp"
#include "support/kafka_env.hpp"
#include "support/test_system.hpp"

namespace sagaflow::testing {
namespace {

using namespace std::chrono_literals;

class Fencing : public SystemTest {
 protected:
  runtime::ServiceOptions TwinOptions(const TempDir& dir, const std::string& service) {
    runtime::ServiceOptions o;
    o.brokers = system_->kafka().brokers;
    o.topic_prefix = system_->prefix();
    o.partitions = system_->options().partitions;
    o.data_dir = (dir.path() / service).string();
    o.instance_id = "1";
    o.producer_per_task = system_->options().producer_per_task;
    return o;
  }
  // Whether the orchestrator's health check says "stopped" (the engine ended) within `timeout`.
  bool OrchestratorStopsWithin(std::chrono::seconds timeout) {
    return WaitFor(
        [&] {
          auto health = system_->Get("orchestrator", "/");
          return health.status == 503 && health.json.value("status", "") == "stopped";
        },
        timeout);
  }
};

class FencingModes : public Fencing, public ::testing::WithParamInterface<bool> {};

TEST_P(FencingModes, SecondInstancesShareThePartitionsAndEverySagaEndsOnceWithOneCharge) {
  TestSystemOptions options;
  options.producer_per_task = GetParam();
  ASSERT_NO_FATAL_FAILURE(Boot(options));
  auto& sys = *system_;
  std::vector<core::OrderId> ids;
  for (int i = 0; i < 6; ++i) ids.push_back(sys.PlaceOrder());

  // A second orchestrator and a second payment join their groups mid-load.
  TempDir twin_dir("fencing");
  auto orchestrator = orchestrator::MakeOrchestrator(TwinOptions(twin_dir, "orchestrator"), {});
  auto payment = payment::MakePayment(TwinOptions(twin_dir, "payment"), {});
  ASSERT_TRUE(orchestrator->Start().ok());
  ASSERT_TRUE(payment->Start().ok());
  for (int i = 0; i < 6; ++i) ids.push_back(sys.PlaceOrder());
  ASSERT_TRUE(WaitFor([&] { return orchestrator->Ready() && payment->Ready(); }, 60s))
      << "the second instances never got partitions to process";
  for (int i = 0; i < 6; ++i) ids.push_back(sys.PlaceOrder());

  // They leave again: their partitions move back, restored from the changelogs.
  orchestrator->Stop();
  payment->Stop();
  for (int i = 0; i < 6; ++i) ids.push_back(sys.PlaceOrder());

  const auto finals = sys.WaitForAllFinal(ids, 90s);
  const auto payments = sys.ReadTopicByKey(sys.topics().payment_payments);
  for (const auto& f : finals) {
    const auto id = f.value("order_id", core::OrderId{0});
    EXPECT_EQ(f.value("status", 0), 3) << f.dump(2);
    auto it = payments.find(std::to_string(id));
    ASSERT_NE(it, payments.end()) << "order " << id << " was never charged";
    EXPECT_EQ(it->second.size(), 1u) << "order " << id << " was charged more than once";
  }
  EXPECT_EQ(finals.size(), ids.size());
}

INSTANTIATE_TEST_SUITE_P(Producers, FencingModes, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "PerTask" : "PerInstance"; });

TEST_F(Fencing, AZombieWithATasksTransactionalIdIsFencedAndTheServiceStops) {
  TestSystemOptions options;
  options.producer_per_task = true;
  ASSERT_NO_FATAL_FAILURE(Boot(options));
  auto& sys = *system_;
  ASSERT_EQ(sys.WaitForFinal(sys.PlaceOrder(), 30s).value("status", 0), 3);

  // Another producer takes task p0's transactional id: the running
  // orchestrator's task p0 is now the zombie.
  auto usurper = kafka::TransactionalProducer::Open(sys.kafka(), sys.prefix() + "sagaflow-orchestrator-p0", 30s);
  ASSERT_TRUE(usurper.ok()) << usurper.error().message;

  // Its next transaction is refused; it stops instead of writing.
  for (int i = 0; i < 20; ++i) {
    auto id = sys.PlaceOrder();
    if (kafka::PartitionOf(core::SagaKey(id), sys.options().partitions) == 0) break;
  }
  EXPECT_TRUE(OrchestratorStopsWithin(60s)) << "the fenced orchestrator kept running";
}

// The instance's shared producer fenced once, as when the broker aborts a
// transaction left open past transaction.timeout.ms: a new producer takes over
// and sagas go on. Fenced again within a minute: another process has the
// instance's transactional id, and the service stops rather than fight it.
TEST_F(Fencing, AnInstancesProducerFencedOnceGoesOnAndFencedTwiceStopsTheService) {
  ASSERT_NO_FATAL_FAILURE(Boot());
  auto& sys = *system_;
  ASSERT_EQ(sys.WaitForFinal(sys.PlaceOrder(), 30s).value("status", 0), 3);
  const std::string id = sys.prefix() + "sagaflow-orchestrator-0-all";

  {
    auto usurper = kafka::TransactionalProducer::Open(sys.kafka(), id, 30s);
    ASSERT_TRUE(usurper.ok()) << usurper.error().message;
  }
  const auto after_first = sys.PlaceOrder();
  EXPECT_EQ(sys.WaitForFinal(after_first, 60s).value("status", 0), 3)
      << "a saga after the first fencing did not end OK";
  ASSERT_EQ(sys.Get("orchestrator", "/").status, 200);

  auto usurper = kafka::TransactionalProducer::Open(sys.kafka(), id, 30s);
  ASSERT_TRUE(usurper.ok()) << usurper.error().message;
  sys.PlaceOrder();
  EXPECT_TRUE(OrchestratorStopsWithin(60s)) << "the orchestrator fenced twice within a minute kept running";
}

}  // namespace
}  // namespace sagaflow::testing
