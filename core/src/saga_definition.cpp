#include "sagaflow/core/saga_definition.hpp"

namespace sagaflow::core {

const StepDefinition* SagaDefinition::Find(Step step) const {
  for (const StepDefinition& definition : steps) {
    if (definition.step == step) return &definition;
  }
  return nullptr;
}

const StepDefinition* SagaDefinition::CompensatedBy(Step step) const {
  for (const StepDefinition& definition : steps) {
    if (definition.compensation && *definition.compensation == step) return &definition;
  }
  return nullptr;
}

int SagaDefinition::IndexOf(Step step) const {
  for (size_t i = 0; i < steps.size(); ++i) {
    if (steps[i].step == step) return static_cast<int>(i);
  }
  return -1;
}

const StepPolicy& SagaDefinition::PolicyFor(Step step) const {
  if (const StepDefinition* definition = Find(step)) return definition->policy;
  // Compensations share one policy; a step the definition does not know gets
  // it too, so a caller always has a deadline to wait for.
  return compensation_policy;
}

Service SagaDefinition::ServiceFor(Step step) const {
  if (const StepDefinition* definition = Find(step)) return definition->service;
  // A compensation undoes its forward step's effect, so the same participant owns it.
  if (const StepDefinition* compensated = CompensatedBy(step)) return compensated->service;
  return Service::kNone;
}

FanOut SagaDefinition::FanOutOf(Step step) const {
  if (const StepDefinition* definition = Find(step)) return definition->fan_out;
  if (const StepDefinition* compensated = CompensatedBy(step)) return compensated->fan_out;
  return FanOut::kNone;
}

SagaDefinition OrderSagaDefinition(const OrderSagaTimings& timings) {
  const StepPolicy policy{.max_attempts = timings.max_attempts,
                          .deadline_ms = timings.deadline_ms,
                          .backoff_multiplier = timings.backoff_multiplier,
                          .max_deadline_ms = timings.max_deadline_ms};
  // A charge can never be undone, and giving up on it would leave its outcome
  // unknown: keep asking until the payment service answers.
  StepPolicy charge_policy = policy;
  charge_policy.max_attempts = 0;
  // Compensations are retried until acknowledged whatever max_attempts says;
  // 0 states that explicitly.
  StepPolicy compensation_policy = policy;
  compensation_policy.max_attempts = 0;

  SagaDefinition definition;
  definition.name = "order";
  definition.steps = {
      StepDefinition{.step = Step::kReserveStock,
                     .kind = StepKind::kCompensatable,
                     .service = Service::kWarehouse,
                     .compensation = Step::kReleaseStock,
                     .policy = policy,
                     .fan_out = FanOut::kPerItem},
      StepDefinition{.step = Step::kCharge,
                     .kind = StepKind::kPivot,
                     .service = Service::kPayment,
                     .compensation = std::nullopt,
                     .policy = charge_policy},
      StepDefinition{.step = Step::kNotify,
                     .kind = StepKind::kRetriable,
                     .service = Service::kNotification,
                     .compensation = std::nullopt,
                     .policy = policy},
  };
  definition.compensation_policy = compensation_policy;
  return definition;
}

}  // namespace sagaflow::core
