#pragma once
/// The order saga declared as data. The aggregate (saga_aggregate.hpp)
/// interprets a SagaDefinition; adding a step is a new StepDefinition, not new
/// control flow. Immutable after construction; safe to share across threads.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "sagaflow/core/types.hpp"

namespace sagaflow::core {

/// How a step's failure affects the saga (Garcia-Molina / Richardson terms).
enum class StepKind {
  kCompensatable,  // before the pivot: undone by its compensation if a later step fails
  kPivot,          // the go/no-go step: once it succeeds the saga must complete; never compensated
  kRetriable,      // after the pivot: its failure never fails the saga, it is recorded in the detail
};

/// Deadline and retry policy of one step. A command with no reply by its
/// deadline is sent again (attempt + 1); the wait for attempt k is
/// deadline_ms * backoff_multiplier^(k-1), capped at max_deadline_ms.
struct StepPolicy {
  int32_t max_attempts = 3;          // 0 = retry until a reply arrives
  int64_t deadline_ms = 10'000;
  double backoff_multiplier = 2.0;
  int64_t max_deadline_ms = 60'000;
};

/// Whether a step is sent as one command or fanned out into legs.
enum class FanOut {
  kNone,
  /// One leg per distinct item of the order, keyed by item (core::ItemKey),
  /// so each leg reaches the partition that owns the item's state. The leg's
  /// command carries only that item's lines. The step succeeds when every leg
  /// succeeded; the first leg that fails fails the step (the saga stops
  /// waiting for the others). Its compensation fans out the same way, to
  /// every leg that did not fail (succeeded, or unanswered: its effect is unknown).
  kPerItem,
};

struct StepDefinition {
  Step step = Step::kUnknown;
  StepKind kind = StepKind::kCompensatable;
  /// The participant that executes the step (and its compensation).
  Service service = Service::kNone;
  /// For kCompensatable steps: the step that undoes this one.
  std::optional<Step> compensation;
  StepPolicy policy;
  /// Fan-out of the step and of its compensation (meant for kCompensatable
  /// steps: each leg's effect can be undone on its own).
  FanOut fan_out = FanOut::kNone;
};

/// An ordered list of forward steps plus the policy for compensations.
struct SagaDefinition {
  std::string name;
  std::vector<StepDefinition> steps;
  /// Compensations must eventually succeed: they are retried until
  /// acknowledged (max_attempts is ignored), with this deadline policy.
  StepPolicy compensation_policy;

  /// The definition of a forward step, or nullptr.
  const StepDefinition* Find(Step step) const;
  /// The forward step whose compensation is `step`, or nullptr.
  const StepDefinition* CompensatedBy(Step step) const;
  /// Index of a forward step in `steps`, or -1.
  int IndexOf(Step step) const;
  /// The policy that applies to `step` (forward or compensation).
  const StepPolicy& PolicyFor(Step step) const;
  /// The participant for `step` (forward or compensation).
  Service ServiceFor(Step step) const;
  /// How `step` (forward, or the compensation of a forward step) fans out.
  FanOut FanOutOf(Step step) const;
};

/// Timings of the order saga, settable from the orchestrator's command line.
struct OrderSagaTimings {
  int32_t max_attempts = 3;
  int64_t deadline_ms = 10'000;
  double backoff_multiplier = 2.0;
  int64_t max_deadline_ms = 60'000;
};

/// The order saga: reserve stock (compensatable, compensated by release,
/// both fanned out per item: the warehouse owns stock per item),
/// charge (pivot, retried until it answers), notify (retriable).
SagaDefinition OrderSagaDefinition(const OrderSagaTimings& timings = {});

}  // namespace sagaflow::core
