// Records that are well-formed FlatBuffers but make no sense, written straight
// to the services' input topics by a stranger: each goes to the dead-letter
// topic with its reason (or, for a late reply, is counted), no service stops,
// and no state or phantom saga is left behind.

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "sagaflow/core/codec.hpp"
#include "sagaflow/core/kafka/kafka_client.hpp"
#include "support/kafka_env.hpp"
#include "support/test_system.hpp"

namespace sagaflow::testing {
namespace {

using namespace std::chrono_literals;

class HostileRecords : public SystemTest {
 protected:
  // Writes `value` with `key` to `topic` in one committed transaction.
  void Inject(const std::string& topic, const std::string& key, const core::Message& message) {
    auto producer = kafka::TransactionalProducer::Open(system_->kafka(), system_->prefix() + "stranger", 30s);
    ASSERT_TRUE(producer.ok()) << producer.error().message;
    ASSERT_TRUE(producer.value()->Begin().ok());
    ASSERT_TRUE(producer.value()->Produce(topic, key, core::Encode(message)).ok());
    auto delivered = producer.value()->Commit();
    ASSERT_TRUE(delivered.ok()) << delivered.error().message;
  }

  // Waits until the dead-letter topic holds `count` letters; returns them.
  std::vector<core::DeadLetter> WaitForDeadLetters(size_t count) {
    std::vector<core::DeadLetter> letters;
    WaitFor(
        [&] {
          letters.clear();
          for (const auto& r : system_->ReadTopic(system_->topics().dlq)) {
            if (!r.message) continue;
            if (const auto* l = std::get_if<core::DeadLetter>(&r.message->payload)) letters.push_back(*l);
          }
          return letters.size() >= count;
        },
        30s);
    return letters;
  }

  static core::Message Command(core::OrderId saga, core::Step step, core::Order order,
                               core::LegKey leg = core::kNoLeg) {
    core::Message m;
    m.message_id = "stranger-" + std::to_string(saga);
    m.saga_id = saga;
    m.produced_at_ms = core::NowMs();
    m.payload = core::StepCommand{step, 1, std::move(order), leg};
    return m;
  }
};

core::Order OrderOf(core::OrderId id, std::vector<core::Item> items) {
  core::Order o;
  o.order_id = id;
  o.user_id = 2;
  o.payment = core::PaymentType::kCard;
  o.notification = core::NotificationType::kEmail;
  o.sum = 100;
  o.items = std::move(items);
  return o;
}

TEST_F(HostileRecords, ANegativeQuantityIsDeadLetteredAndTheWarehouseKeepsServing) {
  ASSERT_NO_FATAL_FAILURE(Boot());
  auto& sys = *system_;
  const core::OrderId forged = 424242;
  // A leg of the reservation, keyed by its item as the orchestrator sends it.
  ASSERT_NO_FATAL_FAILURE(Inject(sys.topics().warehouse_reserve, core::ItemKey(77),
                                 Command(forged, core::Step::kReserveStock, OrderOf(forged, {{77, -5, 1}}), 77)));
  // Its compensation comes next; it must not touch item 77 either.
  ASSERT_NO_FATAL_FAILURE(Inject(sys.topics().warehouse_cancel, core::ItemKey(77),
                                 Command(forged, core::Step::kReleaseStock, OrderOf(forged, {{77, -5, 1}}), 77)));

  auto letters = WaitForDeadLetters(1);
  ASSERT_EQ(letters.size(), 1u);
  EXPECT_NE(letters[0].reason.find("quantity of item 77 must be from 1"), std::string::npos) << letters[0].reason;
  EXPECT_EQ(letters[0].service, "warehouse");

  // The warehouse still serves: a real order reserves, and item 77 was never reserved.
  const auto order = sys.WaitForFinal(sys.PlaceOrder(), 30s);
  EXPECT_EQ(order.value("status", 0), 3) << order.dump(2);
  auto stock = sys.Stock();
  auto it = stock.find(77);
  if (it != stock.end()) {
    EXPECT_EQ(it->second.reserved, 0);
  }
  EXPECT_EQ(sys.Get("warehouse", "/").status, 200);
}

TEST_F(HostileRecords, ACommandWhoseOrderIsNotItsSagaIsDeadLetteredAndChargesNobody) {
  ASSERT_NO_FATAL_FAILURE(Boot());
  auto& sys = *system_;
  ASSERT_NO_FATAL_FAILURE(
      Inject(sys.topics().payment_pay, core::SagaKey(5001), Command(5001, core::Step::kCharge, OrderOf(5002, {}))));
  auto letters = WaitForDeadLetters(1);
  ASSERT_EQ(letters.size(), 1u);
  EXPECT_NE(letters[0].reason.find("a command for order 5002 in an envelope for saga 5001"), std::string::npos)
      << letters[0].reason;
  EXPECT_TRUE(sys.ReadTopic(sys.topics().payment_payments).empty());
}

TEST_F(HostileRecords, RecordsKeyedAgainstTheFanOutAreDeadLetteredWithTheirReason) {
  ASSERT_NO_FATAL_FAILURE(Boot());
  auto& sys = *system_;
  // A reservation leg keyed by its saga rather than its item; a leg of a step
  // that does not fan out; a whole-order reservation; a restock keyed by another item.
  ASSERT_NO_FATAL_FAILURE(Inject(sys.topics().warehouse_reserve, core::SagaKey(6001),
                                 Command(6001, core::Step::kReserveStock, OrderOf(6001, {{10, 1, 1}}), 10)));
  ASSERT_NO_FATAL_FAILURE(Inject(sys.topics().payment_pay, core::ItemKey(10),
                                 Command(6002, core::Step::kCharge, OrderOf(6002, {{10, 1, 1}}), 10)));
  ASSERT_NO_FATAL_FAILURE(Inject(sys.topics().warehouse_reserve, core::SagaKey(6003),
                                 Command(6003, core::Step::kReserveStock, OrderOf(6003, {{10, 1, 1}}))));
  core::Message restock{"stranger-restock", 0, "", core::NowMs(), 1, core::Restock{10, 5}};
  ASSERT_NO_FATAL_FAILURE(Inject(sys.topics().warehouse_restock, core::ItemKey(11), restock));

  auto letters = WaitForDeadLetters(4);
  ASSERT_EQ(letters.size(), 4u);
  std::vector<std::string> reasons;
  for (const auto& l : letters) reasons.push_back(l.reason);
  auto has = [&](const std::string& text) {
    return std::any_of(reasons.begin(), reasons.end(), [&](const auto& r) { return r.find(text) != std::string::npos; });
  };
  EXPECT_TRUE(has("record key '6001' is not the leg's item id 10")) << ::testing::PrintToString(reasons);
  EXPECT_TRUE(has("payment does not take legs of step charge")) << ::testing::PrintToString(reasons);
  EXPECT_TRUE(has("a reservation is made per item")) << ::testing::PrintToString(reasons);
  EXPECT_TRUE(has("record key '11' is not the item id 10")) << ::testing::PrintToString(reasons);
  EXPECT_TRUE(sys.ReadTopic(sys.topics().warehouse_stock).empty()) << "nothing reserved or restocked";
  EXPECT_TRUE(sys.ReadTopic(sys.topics().payment_payments).empty());
}

TEST_F(HostileRecords, AReplyForAnUnknownSagaIsDeadLetteredAndLeavesNoPhantomSaga) {
  ASSERT_NO_FATAL_FAILURE(Boot());
  auto& sys = *system_;
  core::Message reply;
  reply.message_id = "stranger-reply";
  reply.saga_id = 99999;
  reply.produced_at_ms = core::NowMs();
  reply.payload = core::StepReply{core::Step::kCharge, 1, true, "forged"};
  ASSERT_NO_FATAL_FAILURE(Inject(sys.topics().payment_status, core::SagaKey(99999), reply));

  auto letters = WaitForDeadLetters(1);
  ASSERT_EQ(letters.size(), 1u);
  EXPECT_NE(letters[0].reason.find("never started"), std::string::npos) << letters[0].reason;
  EXPECT_EQ(letters[0].service, "orchestrator");
  auto sagas = sys.Get("orchestrator", "/sagas");
  ASSERT_EQ(sagas.status, 200);
  EXPECT_FALSE(sagas.json["counts"].contains("not_started")) << sagas.body;
  EXPECT_EQ(sys.Get("orchestrator", "/sagas/99999").status, 404);
}

TEST_F(HostileRecords, AReplyAfterTheSagaEndedIsCountedNotDeadLettered) {
  ASSERT_NO_FATAL_FAILURE(Boot());
  auto& sys = *system_;
  const auto id = sys.PlaceOrder();
  ASSERT_EQ(sys.WaitForFinal(id, 30s).value("status", 0), 3);
  core::Message late;
  late.message_id = "late-reply";
  late.saga_id = id;
  late.produced_at_ms = core::NowMs();
  late.payload = core::StepReply{core::Step::kCharge, 1, false, "too late"};
  ASSERT_NO_FATAL_FAILURE(Inject(sys.topics().payment_status, core::SagaKey(id), late));
  EXPECT_TRUE(WaitFor([&] { return sys.Metric("orchestrator", "late_replies_total") >= 1; }, 30s));
  EXPECT_TRUE(sys.ReadTopic(sys.topics().dlq).empty());
  EXPECT_EQ(sys.Get("order", "/orders/" + std::to_string(id)).json.value("status", 0), 3);
}

}  // namespace
}  // namespace sagaflow::testing
