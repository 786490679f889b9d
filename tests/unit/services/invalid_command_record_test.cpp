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

core::Message Command(core::OrderId saga, core::Step step, core::Order order) {
  core::Message m;
  m.message_id = "m-1";
  m.saga_id = saga;
  m.payload = core::StepCommand{step, 1, std::move(order)};
  return m;
}

class InvalidCommandRecordTest : public ::testing::Test {
 protected:
  std::unique_ptr<Participant> warehouse_ = warehouse::MakeWarehouse(ServiceOptions{}, warehouse::WarehouseOptions{});
  std::unique_ptr<Participant> payment_ = payment::MakePayment(ServiceOptions{}, ParticipantOptions{});
  std::unique_ptr<Participant> notification_ = notification::MakeNotification(ServiceOptions{}, ParticipantOptions{});
};

TEST_F(InvalidCommandRecordTest, AcceptsAWellFormedCommandForEachParticipant) {
  const auto key = core::SagaKey(42);
  EXPECT_EQ(InvalidCommandRecord(*warehouse_, key, Command(42, core::Step::kReserveStock, SomeOrder(42))), "");
  EXPECT_EQ(InvalidCommandRecord(*warehouse_, key, Command(42, core::Step::kReleaseStock, SomeOrder(42))), "");
  EXPECT_EQ(InvalidCommandRecord(*payment_, key, Command(42, core::Step::kCharge, SomeOrder(42))), "");
  EXPECT_EQ(InvalidCommandRecord(*notification_, key, Command(42, core::Step::kNotify, SomeOrder(42))), "");
}

TEST_F(InvalidCommandRecordTest, RefusesAReservationWithANegativeQuantity) {
  auto order = SomeOrder(42);
  order.items[1].quantity = -5;
  const auto reason =
      InvalidCommandRecord(*warehouse_, core::SagaKey(42), Command(42, core::Step::kReserveStock, order));
  EXPECT_NE(reason.find("quantity of item 15"), std::string::npos) << reason;
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
