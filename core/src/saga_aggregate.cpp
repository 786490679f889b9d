#include "sagaflow/core/saga_aggregate.hpp"

#include <algorithm>
#include <cmath>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace sagaflow::core {

namespace {

constexpr std::string_view kTimedOutDetail = "timed out";

// Custom definitions may use Step values types.cpp has no name for; a number
// still tells the reader which step it was.
std::string StepName(Step step) {
  std::string_view name = ToString(step);
  if (step != Step::kUnknown && name == ToString(Step::kUnknown)) {
    return "step_" + std::to_string(static_cast<int>(step));
  }
  return std::string(name);
}

std::string FailedDetail(Step step, const std::string& participant_detail) {
  std::string text = StepName(step) + " failed";
  if (!participant_detail.empty()) text += ": " + participant_detail;
  return text;
}

std::string TimedOutDetail(Step step, int32_t attempts) {
  return StepName(step) + " timed out after " + std::to_string(attempts) +
         (attempts == 1 ? " attempt" : " attempts");
}

std::string Join(const std::vector<std::string>& parts, std::string_view separator) {
  std::string joined;
  for (const std::string& part : parts) {
    if (!joined.empty()) joined += separator;
    joined += part;
  }
  return joined;
}

bool IsCompensation(const SagaDefinition& def, Step step) {
  return def.Find(step) == nullptr && def.CompensatedBy(step) != nullptr;
}

// Whether a timeout of this attempt leaves no attempt to try next.
bool IsLastAttempt(const StepPolicy& policy, int32_t attempt) {
  return policy.max_attempts > 0 && attempt >= policy.max_attempts;
}

// ---- legs of fanned-out steps ----

bool HasLegs(const SagaState& state, Step step) {
  return std::any_of(state.legs.begin(), state.legs.end(), [&](const LegRecord& l) { return l.step == step; });
}

LegRecord* FindLeg(SagaState& state, Step step, LegKey leg) {
  for (LegRecord& l : state.legs) {
    if (l.step == step && l.leg == leg) return &l;
  }
  return nullptr;
}

bool IsAwaited(const SagaState& state, Step step, LegKey leg) {
  return std::any_of(state.legs.begin(), state.legs.end(), [&](const LegRecord& l) {
    return l.step == step && l.leg == leg && l.status == LegStatus::kAwaited;
  });
}

// Whether a leg of `step` other than `leg` has not answered yet.
bool OthersAwaited(const SagaState& state, Step step, LegKey leg) {
  return std::any_of(state.legs.begin(), state.legs.end(), [&](const LegRecord& l) {
    return l.step == step && l.leg != leg && l.status == LegStatus::kAwaited;
  });
}

// The legs of `step` other than `except` that did not fail: those that
// succeeded and those still unanswered (their effect is unknown).
std::vector<LegKey> LegsNotFailed(const SagaState& state, Step step, LegKey except = kNoLeg) {
  std::vector<LegKey> legs;
  for (const LegRecord& l : state.legs) {
    if (l.step == step && l.leg != except && l.status != LegStatus::kFailed) legs.push_back(l.leg);
  }
  return legs;
}

std::vector<LegKey> AwaitedLegs(const SagaState& state, Step step) {
  std::vector<LegKey> legs;
  for (const LegRecord& l : state.legs) {
    if (l.step == step && l.status == LegStatus::kAwaited) legs.push_back(l.leg);
  }
  return legs;
}

// FanOut::kPerItem: the order's distinct item ids, ascending.
std::vector<LegKey> ItemLegs(const Order& order) {
  std::vector<LegKey> legs;
  for (const Item& item : order.items) legs.push_back(item.item_id);
  std::sort(legs.begin(), legs.end());
  legs.erase(std::unique(legs.begin(), legs.end()), legs.end());
  return legs;
}

// What the command of one leg carries: the order with only the leg's lines.
Order LegOrder(const Order& order, LegKey leg) {
  Order out = order;
  out.items.clear();
  for (const Item& item : order.items) {
    if (item.item_id == leg) out.items.push_back(item);
  }
  return out;
}

// Whether `failed` may have left an effect to undo. A step sent as one
// command: only when its outcome is unknown (it timed out rather than
// answered NOT OK). A fanned-out step: when a leg other than `failed_leg`
// did not fail (it succeeded, or has not answered).
bool MayHaveTakenEffect(const SagaState& state, Step failed, bool effect_unknown, LegKey failed_leg) {
  if (!HasLegs(state, failed)) return effect_unknown;
  return !LegsNotFailed(state, failed, failed_leg).empty();
}

// The compensations to run when `failed` fails: those of the compensatable
// steps that succeeded, latest first, preceded by the failed step's own when
// it may have left an effect (see MayHaveTakenEffect).
std::vector<Step> CompensationPlan(const SagaDefinition& def, const SagaState& state, Step failed,
                                   bool effect_unknown, LegKey failed_leg = kNoLeg) {
  std::vector<Step> plan;
  if (MayHaveTakenEffect(state, failed, effect_unknown, failed_leg)) {
    const StepDefinition* failed_definition = def.Find(failed);
    if (failed_definition && failed_definition->kind == StepKind::kCompensatable &&
        failed_definition->compensation) {
      plan.push_back(*failed_definition->compensation);
    }
  }
  for (auto it = state.succeeded.rbegin(); it != state.succeeded.rend(); ++it) {
    const StepDefinition* definition = def.Find(*it);
    if (definition && definition->kind == StepKind::kCompensatable && definition->compensation) {
      plan.push_back(*definition->compensation);
    }
  }
  return plan;
}

// What a reply to `step` does to the saga, as decided today (Decide records it
// in the event; Apply derives it the same way for events recorded before the
// outcome was). A failed compensatable or pivot step starts the compensation
// of the compensatable steps that succeeded. The reply of one leg of a
// fanned-out step completes the step only when no other leg is awaited; a
// leg that fails fails the step at once.
StepOutcome ReplyOutcome(const SagaDefinition& def, const SagaState& state, Step step, bool ok, LegKey leg,
                         std::vector<Step>& compensations) {
  const bool others_awaited = leg != kNoLeg && OthersAwaited(state, step, leg);
  const StepDefinition* definition = def.Find(step);
  if (definition == nullptr) {  // a compensation's reply
    return others_awaited ? StepOutcome::kLegAnswered : StepOutcome::kAcknowledged;
  }
  if (ok) return others_awaited ? StepOutcome::kLegAnswered : StepOutcome::kSucceeded;
  if (definition->kind == StepKind::kRetriable) return StepOutcome::kNoted;
  compensations = CompensationPlan(def, state, step, false, leg);
  return StepOutcome::kCompensate;
}

// What a timeout of `attempt` of `step` does: the same step again while
// attempts remain (compensations have no last attempt: they must eventually
// happen); after the last one the step failed with an unknown effect.
StepOutcome TimeoutOutcome(const SagaDefinition& def, const SagaState& state, Step step, int32_t attempt,
                           std::vector<Step>& compensations) {
  const StepDefinition* definition = def.Find(step);
  if (definition == nullptr || !IsLastAttempt(definition->policy, attempt)) return StepOutcome::kRetry;
  if (definition->kind == StepKind::kRetriable) return StepOutcome::kNoted;
  compensations = CompensationPlan(def, state, step, true);
  return StepOutcome::kCompensate;
}

// Folds a recorded outcome. `why` is the failure's text for kNoted and kCompensate.
void ApplyOutcome(SagaState& state, Step step, StepOutcome outcome, std::string why,
                  const std::vector<Step>& compensations) {
  switch (outcome) {
    case StepOutcome::kSucceeded:
      state.succeeded.push_back(step);
      break;
    case StepOutcome::kNoted:
      state.notes.push_back(std::move(why));
      break;
    case StepOutcome::kCompensate:
      // An ended saga stays ended even if the log says otherwise afterwards.
      if (state.phase == SagaPhase::kEnded) break;
      state.phase = SagaPhase::kCompensating;
      state.failure = std::move(why);
      state.to_compensate = compensations;
      break;
    case StepOutcome::kAcknowledged:
      // A compensation reply is an acknowledgement, whatever it says.
      if (auto it = std::find(state.to_compensate.begin(), state.to_compensate.end(), step);
          it != state.to_compensate.end()) {
        state.to_compensate.erase(it);
      }
      break;
    case StepOutcome::kRetry:
    case StepOutcome::kLegAnswered:
    case StepOutcome::kUnrecorded:
      break;
  }
}

void ClearPendingIfFor(SagaState& state, Step step) {
  if (state.pending && state.pending->step == step) state.pending.reset();
}

// The wait before attempt k (1-based) times out:
// deadline_ms * backoff_multiplier^(k-1), capped at max_deadline_ms.
int64_t WaitFor(const StepPolicy& policy, int32_t attempt) {
  const double wait = static_cast<double>(policy.deadline_ms) *
                      std::pow(policy.backoff_multiplier, static_cast<double>(std::max(attempt, 1) - 1));
  const double cap = static_cast<double>(policy.max_deadline_ms);
  // The negated comparison also caps NaN and infinity (endless retries grow the power without bound).
  if (!(wait < cap)) return policy.max_deadline_ms;
  return static_cast<int64_t>(wait);
}

// The steps compensations were run for, in the order they ran. Every
// compensation is retried until acknowledged and they run one after the other,
// so when none is left each one that appears in the history was acknowledged.
std::vector<std::string> CompensatedSteps(const SagaDefinition& def, const SagaState& state) {
  std::vector<Step> steps;
  for (const StepRecord& record : state.history) {
    if (IsCompensation(def, record.step) &&
        std::find(steps.begin(), steps.end(), record.step) == steps.end()) {
      steps.push_back(record.step);
    }
  }
  std::vector<std::string> names;
  for (Step step : steps) names.push_back(StepName(step));
  return names;
}

// Builds a Decision by recording events on a working copy of the state, so
// each follow-up decision sees what the previous events changed.
class DecisionBuilder {
 public:
  DecisionBuilder(const SagaDefinition& def, const SagaState& state, TimeMs now_ms)
      : def_(def), state_(state), now_ms_(now_ms) {}

  const SagaState& state() const { return state_; }

  void Record(SagaEventBody body) {
    SagaEvent event{.at_ms = now_ms_, .body = std::move(body)};
    state_ = Apply(def_, std::move(state_), event);
    if (const auto* requested = std::get_if<StepRequested>(&event.body)) {
      if (requested->legs.empty()) {
        decision_.commands.push_back(
            StepCommand{.step = requested->step, .attempt = requested->attempt, .order = state_.order});
      }
      for (LegKey leg : requested->legs) {
        decision_.commands.push_back(StepCommand{.step = requested->step,
                                                 .attempt = requested->attempt,
                                                 .order = LegOrder(state_.order, leg),
                                                 .leg = leg});
      }
    } else if (std::holds_alternative<SagaEnded>(event.body)) {
      decision_.final_status = FinalStatusOf(state_);
    }
    decision_.events.push_back(std::move(event));
  }

  void Request(Step step, int32_t attempt) {
    const int64_t wait = WaitFor(def_.PolicyFor(step), attempt);
    Record(StepRequested{.step = step, .attempt = attempt, .deadline_ms = now_ms_ + wait, .legs = LegsFor(step, attempt)});
  }

  // The legs a request of `step` goes to; empty: one command for the step.
  std::vector<LegKey> LegsFor(Step step, int32_t attempt) const {
    if (def_.FanOutOf(step) != FanOut::kPerItem) return {};
    // A retry goes to the legs that did not answer (none recorded: the step
    // was sent as one command, by an earlier version, and stays so).
    if (attempt > 1) return AwaitedLegs(state_, step);
    if (def_.Find(step) == nullptr) {
      // A compensation undoes every leg of its forward step that did not fail.
      return LegsNotFailed(state_, def_.CompensatedBy(step)->step);
    }
    return ItemLegs(state_.order);
  }

  // `completed` is over (answered, or out of attempts): start whatever comes next.
  void Continue(Step completed) {
    if (state_.phase == SagaPhase::kCompensating) {
      if (!state_.to_compensate.empty()) {
        Request(state_.to_compensate.front(), 1);
        return;
      }
      std::vector<std::string> parts{state_.failure};
      if (std::vector<std::string> compensated = CompensatedSteps(def_, state_); !compensated.empty()) {
        parts.push_back("compensated: " + Join(compensated, ", "));
      }
      parts.insert(parts.end(), state_.notes.begin(), state_.notes.end());
      Record(SagaEnded{.status = OrderStatus::kNotOk, .detail = Join(parts, "; ")});
      return;
    }
    const size_t next = static_cast<size_t>(def_.IndexOf(completed) + 1);
    if (next < def_.steps.size()) {
      Request(def_.steps[next].step, 1);
      return;
    }
    Record(SagaEnded{.status = OrderStatus::kOk, .detail = Join(state_.notes, "; ")});
  }

  Decision Take() && { return std::move(decision_); }

 private:
  const SagaDefinition& def_;
  SagaState state_;
  TimeMs now_ms_;
  Decision decision_;
};

bool IsRunning(const SagaState& state) {
  return state.phase == SagaPhase::kForward || state.phase == SagaPhase::kCompensating;
}

Decision DecideOrderPlaced(const SagaDefinition& def, const SagaState& state, const OrderPlaced& placed,
                           TimeMs now_ms) {
  if (state.phase != SagaPhase::kNotStarted) return {};  // a duplicate of the order that started it
  DecisionBuilder builder(def, state, now_ms);
  builder.Record(SagaStarted{.order = placed.order});
  if (def.steps.empty()) {
    builder.Record(SagaEnded{.status = OrderStatus::kOk, .detail = ""});
  } else {
    builder.Request(def.steps.front().step, 1);
  }
  return std::move(builder).Take();
}

Decision DecideReply(const SagaDefinition& def, const SagaState& state, const StepReply& reply,
                     TimeMs now_ms) {
  // Any attempt of the awaited step answers it: participants deduplicate by
  // step, so every attempt gets the same outcome. Anything else is stale.
  if (!IsRunning(state) || !state.pending || state.pending->step != reply.step) return {};
  // A fanned-out step takes each awaited leg's first reply; a leg that
  // answered already, or is not one of the step's, is a duplicate or stale.
  if (HasLegs(state, reply.step) ? !IsAwaited(state, reply.step, reply.leg) : reply.leg != kNoLeg) return {};
  DecisionBuilder builder(def, state, now_ms);
  StepReplied replied{
      .step = reply.step, .attempt = reply.attempt, .ok = reply.ok, .detail = reply.detail, .leg = reply.leg};
  replied.outcome = ReplyOutcome(def, state, reply.step, reply.ok, reply.leg, replied.compensations);
  const bool step_over = replied.outcome != StepOutcome::kLegAnswered;
  builder.Record(std::move(replied));
  if (step_over) builder.Continue(reply.step);
  return std::move(builder).Take();
}

Decision DecideTick(const SagaDefinition& def, const SagaState& state, const Tick& tick, TimeMs now_ms) {
  if (!IsRunning(state) || !state.pending || tick.now_ms < state.pending->deadline_ms) return {};
  const PendingRequest timed_out = *state.pending;
  DecisionBuilder builder(def, state, now_ms);
  StepTimedOut event{.step = timed_out.step, .attempt = timed_out.attempt};
  event.outcome = TimeoutOutcome(def, state, timed_out.step, timed_out.attempt, event.compensations);
  const bool retry = event.outcome == StepOutcome::kRetry;
  builder.Record(std::move(event));
  if (retry) {
    builder.Request(timed_out.step, timed_out.attempt + 1);
  } else {
    builder.Continue(timed_out.step);
  }
  return std::move(builder).Take();
}

}  // namespace

std::string_view ToString(SagaPhase phase) {
  switch (phase) {
    case SagaPhase::kNotStarted: return "not_started";
    case SagaPhase::kForward: return "running";
    case SagaPhase::kCompensating: return "compensating";
    case SagaPhase::kEnded: return "ended";
  }
  return "unknown";
}

SagaState Apply(const SagaDefinition& def, SagaState state, const SagaEvent& event) {
  ++state.version;
  std::visit(
      [&](const auto& body) {
        using Body = std::decay_t<decltype(body)>;
        if constexpr (std::is_same_v<Body, SagaStarted>) {
          state.order = body.order;
          state.order_id = body.order.order_id;
          state.phase = SagaPhase::kForward;
          state.status = OrderStatus::kProcess;
          state.started_at_ms = event.at_ms;
        } else if constexpr (std::is_same_v<Body, StepRequested>) {
          state.pending =
              PendingRequest{.step = body.step, .attempt = body.attempt, .deadline_ms = body.deadline_ms};
          for (LegKey leg : body.legs) {
            if (LegRecord* known = FindLeg(state, body.step, leg)) {
              known->status = LegStatus::kAwaited;
            } else {
              state.legs.push_back(LegRecord{.step = body.step, .leg = leg, .status = LegStatus::kAwaited});
            }
          }
        } else if constexpr (std::is_same_v<Body, StepReplied>) {
          state.history.push_back(StepRecord{.step = body.step,
                                             .attempt = body.attempt,
                                             .ok = body.ok,
                                             .at_ms = event.at_ms,
                                             .detail = body.detail,
                                             .leg = body.leg});
          if (body.leg != kNoLeg) {
            if (LegRecord* leg = FindLeg(state, body.step, body.leg)) {
              leg->status = body.ok ? LegStatus::kSucceeded : LegStatus::kFailed;
            }
          }
          // One leg answered, others awaited: the step still waits.
          if (body.outcome == StepOutcome::kLegAnswered) return;
          ClearPendingIfFor(state, body.step);
          if (body.outcome != StepOutcome::kUnrecorded) {
            ApplyOutcome(state, body.step, body.outcome, FailedDetail(body.step, body.detail), body.compensations);
          } else {
            // Recorded before outcomes were: derive it from the definition, as then.
            std::vector<Step> compensations;
            const StepOutcome outcome = ReplyOutcome(def, state, body.step, body.ok, kNoLeg, compensations);
            ApplyOutcome(state, body.step, outcome, FailedDetail(body.step, body.detail), compensations);
          }
        } else if constexpr (std::is_same_v<Body, StepTimedOut>) {
          state.history.push_back(StepRecord{.step = body.step,
                                             .attempt = body.attempt,
                                             .ok = false,
                                             .at_ms = event.at_ms,
                                             .detail = std::string(kTimedOutDetail)});
          ClearPendingIfFor(state, body.step);
          // After the last attempt the participant may or may not have acted: the step's effect is unknown.
          if (body.outcome != StepOutcome::kUnrecorded) {
            ApplyOutcome(state, body.step, body.outcome, TimedOutDetail(body.step, body.attempt),
                         body.compensations);
          } else {
            // Recorded before outcomes were: the definition's policy says whether it was the last attempt.
            std::vector<Step> compensations;
            const StepOutcome outcome = TimeoutOutcome(def, state, body.step, body.attempt, compensations);
            ApplyOutcome(state, body.step, outcome, TimedOutDetail(body.step, body.attempt), compensations);
          }
        } else if constexpr (std::is_same_v<Body, SagaEnded>) {
          state.phase = SagaPhase::kEnded;
          state.status = body.status;
          state.detail = body.detail;
          state.ended_at_ms = event.at_ms;
          state.pending.reset();
        }
      },
      event.body);
  return state;
}

Decision Decide(const SagaDefinition& def, const SagaState& state, const SagaInput& input, TimeMs now_ms) {
  return std::visit(
      [&](const auto& in) -> Decision {
        using In = std::decay_t<decltype(in)>;
        if constexpr (std::is_same_v<In, OrderPlaced>) {
          return DecideOrderPlaced(def, state, in, now_ms);
        } else if constexpr (std::is_same_v<In, StepReply>) {
          return DecideReply(def, state, in, now_ms);
        } else {
          return DecideTick(def, state, in, now_ms);
        }
      },
      input);
}

FinalStatus FinalStatusOf(const SagaState& state) {
  return FinalStatus{.status = state.status, .detail = state.detail, .steps = state.history};
}

}  // namespace sagaflow::core
