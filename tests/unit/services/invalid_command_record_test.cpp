#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "sagaflow/core/topics.hpp"
#include "sagaflow/notification/notification_service.hpp"
#include "sagaflow/payment/payment_service.hpp"
#include "sagaflow/runtime/participant.hpp"
#include "sagaflow/warehouse/warehouse_service.hpp"

namespace sagaflow::runtime {
namespace {

core::Order SomeOrder(core::OrderId id) {
  core::Order o;
  o.order_id = id;
  o.user_id = 2;
  o.payment = core::PaymentType::kCard;
  o.notification = core::NotificationType::kEmail;
  o.sum = 100;
  o.items = {core::Item{10, 2, 45}, core::Item{15, 1, 10}};
  return o;
}

core::Message Command(core::OrderId saga, core::Step step, core::Order order, core::LegKey leg = core::kNoLeg) {
  core::Message m;
  m.message_id = "m-1";
  m.saga_id = saga;
  m.payload = core::StepCommand{step, 1, std::move(order), leg};
  return m;
}

// The leg of item `item` of an order: only that item's lines, as the orchestrator sends it.
core::Message Leg(core::OrderId saga, core::Step step, core::ItemId item, int32_t quantity = 2) {
  core::Order order = SomeOrder(saga);
  order.items = {core::Item{item, quantity, 45}};
  return Command(saga, step, std::move(order), item);
}

class InvalidCommandRecordTest : public ::testing::Test {
 protected:
  std::unique_ptr<Participant> warehouse_ = warehouse::MakeWarehouse(ServiceOptions{}, warehouse::WarehouseOptions{});
  std::unique_ptr<Participant> payment_ = payment::MakePayment(ServiceOptions{}, ParticipantOptions{});
  std::unique_ptr<Participant> notification_ = notification::MakeNotification(ServiceOptions{}, ParticipantOptions{});
};

TEST_F(InvalidCommandRecordTest, AcceptsAWellFormedCommandForEachParticipant) {
  const auto key = core::SagaKey(42);
  // The warehouse's commands are legs, keyed by their item.
  EXPECT_EQ(InvalidCommandRecord(*warehouse_, core::ItemKey(10), Leg(42, core::Step::kReserveStock, 10)), "");
  EXPECT_EQ(InvalidCommandRecord(*warehouse_, core::ItemKey(0), Leg(42, core::Step::kReserveStock, 0)), "");
  EXPECT_EQ(InvalidCommandRecord(*warehouse_, core::ItemKey(15), Leg(42, core::Step::kReleaseStock, 15)), "");
  // A release of the order as a whole (from a saga begun before the fan-out) is answered.
  EXPECT_EQ(InvalidCommandRecord(*warehouse_, key, Command(42, core::Step::kReleaseStock, SomeOrder(42))), "");
  EXPECT_EQ(InvalidCommandRecord(*payment_, key, Command(42, core::Step::kCharge, SomeOrder(42))), "");
  EXPECT_EQ(InvalidCommandRecord(*notification_, key, Command(42, core::Step::kNotify, SomeOrder(42))), "");
}

TEST_F(InvalidCommandRecordTest, RefusesAReservationWithANegativeQuantity) {
  const auto reason = InvalidCommandRecord(*warehouse_, core::ItemKey(15), Leg(42, core::Step::kReserveStock, 15, -5));
  EXPECT_NE(reason.find("quantity of item 15"), std::string::npos) << reason;
}

TEST_F(InvalidCommandRecordTest, RefusesLegsKeyedOrShapedAgainstTheFanOut) {
  auto reason = [&](const Participant& p, const std::string& key, const core::Message& m) {
    return InvalidCommandRecord(p, key, m);
  };
  // Keyed by the saga, not the item.
  EXPECT_NE(reason(*warehouse_, core::SagaKey(42), Leg(42, core::Step::kReserveStock, 10))
                .find("record key '42' is not the leg's item id 10"),
            std::string::npos);
  // A whole-order reservation.
  EXPECT_NE(reason(*warehouse_, core::SagaKey(42), Command(42, core::Step::kReserveStock, SomeOrder(42)))
                .find("a reservation is made per item"),
            std::string::npos);
  // A leg carrying another item's line.
  EXPECT_NE(reason(*warehouse_, core::ItemKey(10), Command(42, core::Step::kReserveStock, SomeOrder(42), 10))
                .find("the leg of item 10 carries a line of item 15"),
            std::string::npos);
  // A negative leg.
  EXPECT_NE(reason(*warehouse_, core::ItemKey(-3), Leg(42, core::Step::kReserveStock, -3)).find("leg must be an item id"),
            std::string::npos);
  // A leg of a step that does not fan out.
  EXPECT_NE(reason(*payment_, core::ItemKey(10), Command(42, core::Step::kCharge, SomeOrder(42), 10))
                .find("payment does not take legs of step charge"),
            std::string::npos);
}

TEST_F(InvalidCommandRecordTest, RefusesAnEnvelopeWhoseSagaIdIsNotTheOrderOrTheKey) {
  EXPECT_NE(InvalidCommandRecord(*payment_, core::SagaKey(43), Command(43, core::Step::kCharge, SomeOrder(42))), "");
  EXPECT_NE(InvalidCommandRecord(*payment_, core::SagaKey(7), Command(42, core::Step::kCharge, SomeOrder(42))), "");
  EXPECT_NE(InvalidCommandRecord(*payment_, core::SagaKey(0), Command(0, core::Step::kCharge, SomeOrder(0))), "");
}

TEST_F(InvalidCommandRecordTest, RefusesStepsOfOtherParticipantsAndOtherPayloads) {
  const auto key = core::SagaKey(42);
  EXPECT_NE(InvalidCommandRecord(*payment_, key, Command(42, core::Step::kReserveStock, SomeOrder(42))), "");
  EXPECT_NE(InvalidCommandRecord(*warehouse_, key, Command(42, core::Step::kNotify, SomeOrder(42))), "");
  core::Message reply;
  reply.saga_id = 42;
  reply.payload = core::StepReply{core::Step::kCharge, 1, true, ""};
  EXPECT_NE(InvalidCommandRecord(*payment_, key, reply).find("expected a StepCommand"), std::string::npos);
}

}  // namespace
}  // namespace sagaflow::runtime
