#include "sagaflow/core/types.hpp"

#include <chrono>

namespace sagaflow::core {

std::string_view ToString(OrderStatus status) {
  switch (status) {
    case OrderStatus::kNew: return "NEW";
    case OrderStatus::kProcess: return "PROCESS";
    case OrderStatus::kOk: return "OK";
    case OrderStatus::kNotOk: return "NOT OK";
    case OrderStatus::kCanceled: return "CANCELED";
    case OrderStatus::kUnknown: break;
  }
  return "UNKNOWN";
}

std::string_view ToString(Step step) {
  switch (step) {
    case Step::kReserveStock: return "reserve_stock";
    case Step::kCharge: return "charge";
    case Step::kNotify: return "notify";
    case Step::kReleaseStock: return "release_stock";
    case Step::kUnknown: break;
  }
  return "unknown";
}

std::string_view ToString(StepOutcome outcome) {
  switch (outcome) {
    case StepOutcome::kUnrecorded: return "unrecorded";
    case StepOutcome::kSucceeded: return "succeeded";
    case StepOutcome::kRetry: return "retry";
    case StepOutcome::kNoted: return "noted";
    case StepOutcome::kCompensate: return "compensate";
    case StepOutcome::kAcknowledged: return "acknowledged";
    case StepOutcome::kLegAnswered: return "leg_answered";
  }
  return "unknown";
}

std::string_view ToString(Service service) {
  switch (service) {
    case Service::kWarehouse: return "warehouse";
    case Service::kPayment: return "payment";
    case Service::kNotification: return "notification";
    case Service::kNone: break;
  }
  return "none";
}

Service ServiceOf(Step step) {
  switch (step) {
    case Step::kReserveStock:
    case Step::kReleaseStock: return Service::kWarehouse;
    case Step::kCharge: return Service::kPayment;
    case Step::kNotify: return Service::kNotification;
    case Step::kUnknown: break;
  }
  return Service::kNone;
}

std::span<const SagaEvent> SagaEventsOf(const Payload& payload) {
  if (const auto* one = std::get_if<SagaEvent>(&payload)) return {one, 1};
  if (const auto* many = std::get_if<SagaEvents>(&payload)) return many->events;
  return {};
}

TimeMs NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace sagaflow::core
