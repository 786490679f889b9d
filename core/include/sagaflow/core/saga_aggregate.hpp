#pragma once
/// The saga as an event-sourced aggregate: pure functions, no I/O, no clock.
///
///   Apply(def, state, event)        -> state    folds one recorded event
///   Decide(def, state, input, now)  -> Decision the events to record and the
///                                                messages to send for an input
///
/// The orchestrator records Decision::events on orders.saga.events and sends
/// Decision::commands / final_status in the same Kafka transaction, then folds
/// the events with Apply. Replaying the event log with Apply rebuilds every saga.
/// Decide is deterministic given (state, input, now): `sagaflow replay --verify` relies on it.
///
/// Rules (interpreting a SagaDefinition):
/// - OrderPlaced on a new saga: SagaStarted + StepRequested(first step, attempt 1).
///   On an existing saga: ignored (duplicate).
/// - A reply is accepted only for the step currently awaited (any attempt of it);
///   anything else is a duplicate or stale and produces no events.
/// - OK reply: StepReplied, then the next forward step, or SagaEnded(OK).
/// - NOT OK reply: kCompensatable / kPivot -> compensate, in reverse order, every
///   compensatable step that succeeded, then SagaEnded(NOT OK); kRetriable ->
///   carry on (the failure is kept for the final detail).
/// - Compensation replies are acknowledgements (ok or not, the step is done).
/// - Tick(now) past the awaited request's deadline: StepTimedOut, then the same
///   step again (attempt + 1) if attempts remain; otherwise kCompensatable ->
///   compensate it too (its effect is unknown) and the earlier ones, NOT OK;
///   kRetriable -> carry on as failed; kPivot with max_attempts 0 -> retried forever.
/// - A step with StepDefinition::fan_out (and its compensation) is requested
///   as legs: StepRequested::legs lists them, one command each (keyed by leg).
///   Each leg's first reply is recorded (StepReplied::leg); while other legs
///   are awaited its outcome is kLegAnswered and the step goes on waiting.
///   The step succeeds with its last leg; a leg that answers NOT OK fails it
///   at once, and the compensation runs on every other leg that did not fail
///   (those that succeeded, and those unanswered: their effect is unknown).
///   A timeout retries only the unanswered legs. A leg's duplicate or late
///   reply, or one for a leg the step does not have, changes nothing.
/// - Once ended, nothing changes the saga.

#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "sagaflow/core/saga_definition.hpp"
#include "sagaflow/core/types.hpp"

namespace sagaflow::core {

/// The deadline clock advanced to `now_ms`.
struct Tick {
  TimeMs now_ms = 0;
  bool operator==(const Tick&) const = default;
};
using SagaInput = std::variant<OrderPlaced, StepReply, Tick>;

/// What Decide asks the orchestrator to do, atomically.
struct Decision {
  std::vector<SagaEvent> events;
  /// One per StepRequested event, to the step's participant.
  std::vector<StepCommand> commands;
  /// Set when the saga ends: to the order service.
  std::optional<FinalStatus> final_status;
  bool empty() const { return events.empty(); }
};

/// Folds one event into the state. Unknown or out-of-place events are
/// applied as recorded (the log is the truth); never throws.
/// A function of the events alone: every decision (the deadline, whether a
/// timeout was the last attempt, the compensation plan) is in the event
/// (StepRequested::deadline_ms, StepReplied/StepTimedOut::outcome and
/// ::compensations). `def` is read only for events recorded before schema
/// version 2, whose outcome is kUnrecorded: those fold as they did then, with
/// the definition's step kinds and policy.
SagaState Apply(const SagaDefinition& def, SagaState state, const SagaEvent& event);

/// Decides what an input means for a saga. Pure and deterministic.
/// `now_ms` stamps the events and sets deadlines.
Decision Decide(const SagaDefinition& def, const SagaState& state, const SagaInput& input, TimeMs now_ms);

/// The FinalStatus message for an ended saga.
FinalStatus FinalStatusOf(const SagaState& state);

}  // namespace sagaflow::core
