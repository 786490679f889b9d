// Deadlines, retries and duplicate commands, against the real broker: a slow
// or absent participant never leaves a saga hanging, and a repeated command
// never reserves or charges twice.

#include <gtest/gtest.h>

#include "support/kafka_env.hpp"
#include "support/test_system.hpp"

namespace sagaflow::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

core::OrderSagaTimings FastTimings(int32_t attempts) {
  core::OrderSagaTimings t;
  t.max_attempts = attempts;
  t.deadline_ms = 600;
  t.backoff_multiplier = 2.0;
  t.max_deadline_ms = 2'000;
  return t;
}

// GET /sagas/{id} until `condition` holds on its JSON.
bool WaitForSaga(TestSystem& sys, core::OrderId id, const std::function<bool(const json&)>& condition,
                 std::chrono::milliseconds timeout) {
  return WaitFor(
      [&] {
        auto saga = sys.Get("orchestrator", "/sagas/" + std::to_string(id));
        return saga.status == 200 && condition(saga.json);
      },
      timeout);
}

TEST(Deadlines, ReservationThatNeverAnswersInTimeIsCompensatedAndTheOrderEndsNotOk) {
  TestSystemOptions options;
  options.name = "slowwarehouse";
  options.timings = FastTimings(2);
  // Slower than both attempts' deadlines (600 ms + 1200 ms).
  options.warehouse.delay_min_ms = options.warehouse.delay_max_ms = 4'000;
  TestSystem sys(options);
  ASSERT_TRUE(sys.Start().ok());

  const auto id = sys.PlaceOrder();
  auto order = sys.WaitForFinal(id, 60s);
  EXPECT_EQ(order.value("status", 0), 4) << order.dump(2);
  EXPECT_EQ(order.value("detail", ""), "reserve_stock timed out after 2 attempts; compensated: release_stock");
  EXPECT_GE(sys.Metric("orchestrator", "step_timeouts_total"), 2);
  EXPECT_GE(sys.Metric("orchestrator", "step_retries_total"), 1);

  // The late reservation and the release both reach the warehouse; whatever
  // their order, nothing stays reserved for a NOT OK order.
  ASSERT_TRUE(WaitFor(
      [&] {
        auto r = sys.Get("warehouse", "/reservations/" + std::to_string(id));
        return r.status == 200 && r.json.value("state", "") == "released";
      },
      30s));
  EXPECT_TRUE(StockConserved(sys.Stock(), options.default_stock, {order}));
  EXPECT_EQ(sys.Get("payment", "/payments/" + std::to_string(id)).status, 404);
}

TEST(Deadlines, NotificationThatNeverAnswersInTimeLeavesTheOrderOkWithANote) {
  TestSystemOptions options;
  options.name = "slownotify";
  options.timings = FastTimings(2);
  options.notification.delay_min_ms = options.notification.delay_max_ms = 4'000;
  TestSystem sys(options);
  ASSERT_TRUE(sys.Start().ok());

  const auto id = sys.PlaceOrder();
  auto order = sys.WaitForFinal(id, 60s);
  EXPECT_EQ(order.value("status", 0), 3) << order.dump(2);
  EXPECT_EQ(order.value("detail", ""), "notify timed out after 2 attempts");
  auto payment = sys.Get("payment", "/payments/" + std::to_string(id));
  ASSERT_EQ(payment.status, 200);
  EXPECT_TRUE(payment.json.value("ok", false));
  // The notification is sent once, however many times it was asked for.
  ASSERT_TRUE(WaitFor([&] { return sys.Get("notification", "/notifications/" + std::to_string(id)).status == 200; },
                      30s));
  EXPECT_EQ(sys.ReadTopicByKey(sys.topics().notification_sent)[std::to_string(id)].size(), 1u);
}

TEST(Deadlines, ADeadlineRecordedBeforeAnOrchestratorRestartStillFiresAfterIt) {
  TestSystemOptions options;
  options.name = "deadlinerestart";
  options.timings = FastTimings(3);
  TestSystem sys(options);
  ASSERT_TRUE(sys.Start().ok());

  // Payment is away: the charge waits on its deadline.
  sys.StopService("payment");
  const auto id = sys.PlaceOrder();
  ASSERT_TRUE(WaitForSaga(
      sys, id, [](const json& s) { return s["pending"].is_object() && s["pending"]["step"] == "charge"; }, 30s));
  sys.StopService("orchestrator");
  ASSERT_TRUE(sys.StartService("orchestrator").ok());
  // The restarted orchestrator retries from the deadline it recorded before (the
  // charge is retried until answered: it is the pivot).
  ASSERT_TRUE(WaitForSaga(
      sys, id, [](const json& s) { return s["pending"].is_object() && s["pending"]["attempt"].get<int>() >= 3; },
      30s));
  ASSERT_TRUE(sys.StartService("payment").ok());
  auto order = sys.WaitForFinal(id, 60s);
  EXPECT_EQ(order.value("status", 0), 3) << order.dump(2);
  // Several charge commands were sent; exactly one charge was made.
  EXPECT_EQ(sys.ReadTopicByKey(sys.topics().payment_payments)[std::to_string(id)].size(), 1u);
}

TEST(Participants, ARepeatedCommandGetsTheRecordedReplyAndChangesNothing) {
  TestSystemOptions options;
  options.name = "dupcommand";
  TestSystem sys(options);
  ASSERT_TRUE(sys.Start().ok());
  const auto id = sys.PlaceOrder();
  auto order = sys.WaitForFinal(id, 30s);
  ASSERT_EQ(order.value("status", 0), 3) << order.dump(2);
  const auto stock_before = sys.Stock();

  // Replay the reserve and charge commands the orchestrator sent, as a retry would.
  auto producer = kafka::TransactionalProducer::Open(sys.kafka(), sys.prefix() + "replayer", 30s);
  ASSERT_TRUE(producer.ok()) << producer.error().message;
  ASSERT_TRUE(producer.value()->Begin().ok());
  size_t replayed = 0;
  for (const auto* topic : {&sys.topics().warehouse_reserve, &sys.topics().payment_pay}) {
    // By saga id: the reservation's legs are keyed by their items.
    const auto records = sys.ReadTopic(*topic);  // named: the loop must not outlive it
    for (const auto& r : records) {
      ASSERT_TRUE(r.message.has_value());
      if (r.message->saga_id != id) continue;
      auto command = std::get<core::StepCommand>(r.message->payload);
      command.attempt = 7;
      core::Message again = *r.message;
      again.payload = command;
      ASSERT_TRUE(producer.value()->Produce(*topic, r.record.key, core::Encode(again)).ok());
      ++replayed;
    }
  }
  ASSERT_EQ(replayed, 3u);  // a reserve leg for each of the 2 items, a charge
  ASSERT_TRUE(producer.value()->Commit().ok());

  // Each participant answers attempt 7 with the reply it recorded the first time.
  auto replies_for_attempt_7 = [&](const std::string& topic) {
    size_t n = 0;
    auto by_key = sys.ReadTopicByKey(topic);
    for (const auto& r : by_key[std::to_string(id)]) {
      const auto& reply = std::get<core::StepReply>(r.message->payload);
      if (reply.attempt == 7) {
        EXPECT_TRUE(reply.ok) << reply.detail;
        ++n;
      }
    }
    return n;
  };
  ASSERT_TRUE(WaitFor(
      [&] {
        return replies_for_attempt_7(sys.topics().warehouse_status) == 2 &&
               replies_for_attempt_7(sys.topics().payment_status) == 1;
      },
      30s));
  EXPECT_EQ(sys.Stock(), stock_before);
  EXPECT_EQ(sys.ReadTopicByKey(sys.topics().payment_payments)[std::to_string(id)].size(), 1u);
  EXPECT_GE(sys.Metric("warehouse", "duplicate_commands_total"), 1);
  EXPECT_GE(sys.Metric("payment", "duplicate_commands_total"), 1);
  // The saga had ended: the stale replies change nothing there either.
  EXPECT_EQ(sys.WaitForFinal(id, 5s), order);
}

}  // namespace
}  // namespace sagaflow::testing
