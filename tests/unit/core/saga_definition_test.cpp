#include "sagaflow/core/saga_definition.hpp"

#include <gtest/gtest.h>

namespace sagaflow::core {
namespace {

std::vector<Step> StepsOf(const SagaDefinition& def) {
  std::vector<Step> steps;
  for (const StepDefinition& step : def.steps) steps.push_back(step.step);
  return steps;
}

TEST(SagaDefinition, OrderSagaReservesThenChargesThenNotifies) {
  const SagaDefinition def = OrderSagaDefinition();
  EXPECT_EQ(def.name, "order");
  EXPECT_EQ(StepsOf(def), (std::vector<Step>{Step::kReserveStock, Step::kCharge, Step::kNotify}));
}

TEST(SagaDefinition, OrderSagaStepKindsAndServices) {
  const SagaDefinition def = OrderSagaDefinition();
  ASSERT_EQ(def.steps.size(), 3u);
  EXPECT_EQ(def.steps[0].kind, StepKind::kCompensatable);
  EXPECT_EQ(def.steps[0].service, Service::kWarehouse);
  EXPECT_EQ(def.steps[0].compensation, Step::kReleaseStock);
  EXPECT_EQ(def.steps[1].kind, StepKind::kPivot);
  EXPECT_EQ(def.steps[1].service, Service::kPayment);
  EXPECT_EQ(def.steps[1].compensation, std::nullopt);
  EXPECT_EQ(def.steps[2].kind, StepKind::kRetriable);
  EXPECT_EQ(def.steps[2].service, Service::kNotification);
  EXPECT_EQ(def.steps[2].compensation, std::nullopt);
}

TEST(SagaDefinition, OrderSagaPoliciesComeFromTimings) {
  const OrderSagaTimings timings{
      .max_attempts = 5, .deadline_ms = 1'500, .backoff_multiplier = 3.0, .max_deadline_ms = 9'000};
  const SagaDefinition def = OrderSagaDefinition(timings);
  for (Step step : {Step::kReserveStock, Step::kCharge, Step::kNotify, Step::kReleaseStock}) {
    SCOPED_TRACE(ToString(step));
    const StepPolicy& policy = def.PolicyFor(step);
    EXPECT_EQ(policy.deadline_ms, 1'500);
    EXPECT_EQ(policy.backoff_multiplier, 3.0);
    EXPECT_EQ(policy.max_deadline_ms, 9'000);
  }
  EXPECT_EQ(def.PolicyFor(Step::kReserveStock).max_attempts, 5);
  EXPECT_EQ(def.PolicyFor(Step::kNotify).max_attempts, 5);
}

TEST(SagaDefinition, ChargeIsRetriedUntilAnsweredWhateverTheTimings) {
  const SagaDefinition def = OrderSagaDefinition({.max_attempts = 2});
  EXPECT_EQ(def.PolicyFor(Step::kCharge).max_attempts, 0);
}

TEST(SagaDefinition, PolicyForCompensationIsTheCompensationPolicy) {
  const SagaDefinition def = OrderSagaDefinition({.deadline_ms = 700});
  EXPECT_EQ(&def.PolicyFor(Step::kReleaseStock), &def.compensation_policy);
  EXPECT_EQ(def.compensation_policy.deadline_ms, 700);
}

TEST(SagaDefinition, FindsForwardStepsOnly) {
  const SagaDefinition def = OrderSagaDefinition();
  ASSERT_NE(def.Find(Step::kCharge), nullptr);
  EXPECT_EQ(def.Find(Step::kCharge)->step, Step::kCharge);
  EXPECT_EQ(def.Find(Step::kReleaseStock), nullptr);
  EXPECT_EQ(def.Find(Step::kUnknown), nullptr);
}

TEST(SagaDefinition, IndexOfGivesPositionOrMinusOne) {
  const SagaDefinition def = OrderSagaDefinition();
  EXPECT_EQ(def.IndexOf(Step::kReserveStock), 0);
  EXPECT_EQ(def.IndexOf(Step::kCharge), 1);
  EXPECT_EQ(def.IndexOf(Step::kNotify), 2);
  EXPECT_EQ(def.IndexOf(Step::kReleaseStock), -1);
}

TEST(SagaDefinition, CompensatedByFindsTheStepACompensationUndoes) {
  const SagaDefinition def = OrderSagaDefinition();
  ASSERT_NE(def.CompensatedBy(Step::kReleaseStock), nullptr);
  EXPECT_EQ(def.CompensatedBy(Step::kReleaseStock)->step, Step::kReserveStock);
  EXPECT_EQ(def.CompensatedBy(Step::kCharge), nullptr);
}

TEST(SagaDefinition, CompensationRunsOnTheServiceOfItsStep) {
  const SagaDefinition def = OrderSagaDefinition();
  EXPECT_EQ(def.ServiceFor(Step::kReserveStock), Service::kWarehouse);
  EXPECT_EQ(def.ServiceFor(Step::kReleaseStock), Service::kWarehouse);
  EXPECT_EQ(def.ServiceFor(Step::kCharge), Service::kPayment);
  EXPECT_EQ(def.ServiceFor(Step::kNotify), Service::kNotification);
  EXPECT_EQ(def.ServiceFor(Step::kUnknown), Service::kNone);
}

TEST(SagaDefinition, ServiceForFollowsTheDefinitionNotTheBuiltInMapping) {
  // The same steps assigned to other participants: routing must follow the definition.
  SagaDefinition def;
  def.steps = {StepDefinition{.step = Step::kReserveStock,
                              .kind = StepKind::kCompensatable,
                              .service = Service::kPayment,
                              .compensation = Step::kReleaseStock,
                              .policy = {}}};
  EXPECT_EQ(def.ServiceFor(Step::kReserveStock), Service::kPayment);
  EXPECT_EQ(def.ServiceFor(Step::kReleaseStock), Service::kPayment);
  EXPECT_EQ(def.ServiceFor(Step::kNotify), Service::kNone);
}

}  // namespace
}  // namespace sagaflow::core
