#include "sagaflow/core/saga_aggregate.hpp"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "sagaflow/core/saga_definition.hpp"
#include "sagaflow/core/topics.hpp"

namespace sagaflow::core {
namespace {

constexpr TimeMs kStart = 1'700'000'000'000;
constexpr OrderId kOrderId = 42;

Order MakeOrder() {
  return Order{.order_id = kOrderId,
               .user_id = 7,
               .payment = PaymentType::kCard,
               .notification = NotificationType::kEmail,
               .created_at = "2024-01-01T00:00:00Z",
               .approved_at = "",
               .sum = 300,
               .items = {Item{.item_id = 1, .quantity = 2, .price = 150}}};
}

// A saga driven the way the orchestrator drives it: Decide, then fold the
// decided events with Apply. Keeps the event log for replay checks.
class Saga {
 public:
  explicit Saga(SagaDefinition def = OrderSagaDefinition(), Order order = MakeOrder())
      : def_(std::move(def)), order_(std::move(order)) {}

  const SagaDefinition& def() const { return def_; }
  const SagaState& state() const { return state_; }
  const std::vector<SagaEvent>& log() const { return log_; }
  TimeMs now() const { return now_; }

  Decision Feed(const SagaInput& input) {
    Decision decision = Decide(def_, state_, input, now_);
    for (const SagaEvent& event : decision.events) {
      state_ = Apply(def_, state_, event);
      log_.push_back(event);
    }
    return decision;
  }

  Decision Place() { return Feed(OrderPlaced{.order = order_}); }

  // Answers `step` (the attempt currently awaited unless given), 100 ms
  // later; for a fanned-out step, its first leg still awaited answers.
  Decision Reply(Step step, bool ok, std::string detail = "", int32_t attempt = 0) {
    LegKey leg = kNoLeg;
    for (const LegRecord& l : state_.legs) {
      if (l.step == step && l.status == LegStatus::kAwaited) {
        leg = l.leg;
        break;
      }
    }
    return ReplyLeg(step, leg, ok, std::move(detail), attempt);
  }

  // Answers one leg of `step`.
  Decision ReplyLeg(Step step, LegKey leg, bool ok, std::string detail = "", int32_t attempt = 0) {
    now_ += 100;
    if (attempt == 0) attempt = state_.pending ? state_.pending->attempt : 1;
    return Feed(StepReply{.step = step, .attempt = attempt, .ok = ok, .detail = std::move(detail), .leg = leg});
  }

  Decision TickAt(TimeMs now) {
    now_ = now;
    return Feed(Tick{.now_ms = now});
  }

  // Lets the awaited request's deadline pass.
  Decision Expire() { return TickAt(state_.pending->deadline_ms); }

 private:
  SagaDefinition def_;
  Order order_;
  SagaState state_;
  std::vector<SagaEvent> log_;
  TimeMs now_ = kStart;
};

std::vector<Step> RequestedSteps(const Decision& decision) {
  std::vector<Step> steps;
  for (const StepCommand& command : decision.commands) steps.push_back(command.step);
  return steps;
}

template <typename Body>
std::vector<Body> EventsOf(const std::vector<SagaEvent>& events) {
  std::vector<Body> bodies;
  for (const SagaEvent& event : events) {
    if (const auto* body = std::get_if<Body>(&event.body)) bodies.push_back(*body);
  }
  return bodies;
}

// ---- starting ----

TEST(SagaAggregate, StartsByReservingStockWhenOrderPlaced) {
  Saga saga;
  const Decision decision = saga.Place();

  ASSERT_EQ(decision.events.size(), 2u);
  EXPECT_EQ(decision.events[0], (SagaEvent{.at_ms = kStart, .body = SagaStarted{.order = MakeOrder()}}));
  EXPECT_EQ(decision.events[1],
            (SagaEvent{.at_ms = kStart,
                       .body = StepRequested{.step = Step::kReserveStock,
                                             .attempt = 1,
                                             .deadline_ms = kStart + 10'000,
                                             .legs = {1}}}));
  // One leg per item: the order has one, item 1.
  ASSERT_EQ(decision.commands.size(), 1u);
  EXPECT_EQ(decision.commands[0],
            (StepCommand{.step = Step::kReserveStock, .attempt = 1, .order = MakeOrder(), .leg = 1}));
  EXPECT_FALSE(decision.final_status.has_value());

  const SagaState& state = saga.state();
  EXPECT_EQ(state.order_id, kOrderId);
  EXPECT_EQ(state.order, MakeOrder());
  EXPECT_EQ(state.phase, SagaPhase::kForward);
  EXPECT_EQ(state.status, OrderStatus::kProcess);
  EXPECT_EQ(state.started_at_ms, kStart);
  EXPECT_EQ(state.pending,
            (PendingRequest{.step = Step::kReserveStock, .attempt = 1, .deadline_ms = kStart + 10'000}));
  EXPECT_EQ(state.version, 2);
}

TEST(SagaAggregate, IgnoresDuplicateOrderPlaced) {
  Saga saga;
  saga.Place();
  const SagaState before = saga.state();
  EXPECT_TRUE(saga.Place().empty());
  saga.Reply(Step::kReserveStock, true);
  EXPECT_TRUE(saga.Place().empty());
  EXPECT_EQ(saga.state().pending->step, Step::kCharge);
  EXPECT_EQ(before.pending->step, Step::kReserveStock);
}

// ---- outcomes ----

TEST(SagaAggregate, EndsOkWhenEveryStepSucceeds) {
  Saga saga;
  saga.Place();
  Decision decision = saga.Reply(Step::kReserveStock, true, "reserved");
  EXPECT_EQ(RequestedSteps(decision), std::vector<Step>{Step::kCharge});
  decision = saga.Reply(Step::kCharge, true, "charged");
  EXPECT_EQ(RequestedSteps(decision), std::vector<Step>{Step::kNotify});
  decision = saga.Reply(Step::kNotify, true, "sent");

  ASSERT_EQ(decision.events.size(), 2u);
  EXPECT_EQ(decision.events[1].body, (SagaEventBody{SagaEnded{.status = OrderStatus::kOk, .detail = ""}}));
  EXPECT_TRUE(decision.commands.empty());
  const std::vector<StepRecord> history{
      {.step = Step::kReserveStock, .attempt = 1, .ok = true, .at_ms = kStart + 100, .detail = "reserved", .leg = 1},
      {.step = Step::kCharge, .attempt = 1, .ok = true, .at_ms = kStart + 200, .detail = "charged"},
      {.step = Step::kNotify, .attempt = 1, .ok = true, .at_ms = kStart + 300, .detail = "sent"},
  };
  ASSERT_TRUE(decision.final_status.has_value());
  EXPECT_EQ(*decision.final_status,
            (FinalStatus{.status = OrderStatus::kOk, .detail = "", .steps = history}));

  const SagaState& state = saga.state();
  EXPECT_EQ(state.phase, SagaPhase::kEnded);
  EXPECT_EQ(state.status, OrderStatus::kOk);
  EXPECT_EQ(state.history, history);
  EXPECT_EQ(state.succeeded, (std::vector<Step>{Step::kReserveStock, Step::kCharge, Step::kNotify}));
  EXPECT_FALSE(state.pending.has_value());
  EXPECT_EQ(state.ended_at_ms, kStart + 300);
  EXPECT_EQ(state.version, static_cast<int64_t>(saga.log().size()));
  EXPECT_EQ(saga.log().size(), 8u);
}

TEST(SagaAggregate, EndsNotOkWithNothingToCompensateWhenWarehouseFails) {
  Saga saga;
  saga.Place();
  const Decision decision = saga.Reply(Step::kReserveStock, false, "item 1: 2 requested, 0 available");

  EXPECT_TRUE(decision.commands.empty());
  ASSERT_TRUE(decision.final_status.has_value());
  EXPECT_EQ(decision.final_status->status, OrderStatus::kNotOk);
  EXPECT_EQ(decision.final_status->detail, "reserve_stock failed: item 1: 2 requested, 0 available");
  EXPECT_EQ(saga.state().phase, SagaPhase::kEnded);
  EXPECT_EQ(saga.state().status, OrderStatus::kNotOk);
  EXPECT_TRUE(EventsOf<StepRequested>(decision.events).empty());
}

TEST(SagaAggregate, ReleasesReservationWhenPaymentFails) {
  Saga saga;
  saga.Place();
  saga.Reply(Step::kReserveStock, true);
  Decision decision = saga.Reply(Step::kCharge, false, "insufficient funds");

  EXPECT_EQ(RequestedSteps(decision), std::vector<Step>{Step::kReleaseStock});
  EXPECT_EQ(decision.commands[0].attempt, 1);
  EXPECT_FALSE(decision.final_status.has_value());
  EXPECT_EQ(saga.state().phase, SagaPhase::kCompensating);
  EXPECT_EQ(saga.state().failure, "charge failed: insufficient funds");
  EXPECT_EQ(saga.state().to_compensate, std::vector<Step>{Step::kReleaseStock});
  EXPECT_EQ(saga.state().status, OrderStatus::kProcess);

  decision = saga.Reply(Step::kReleaseStock, true, "released");
  ASSERT_TRUE(decision.final_status.has_value());
  EXPECT_EQ(decision.final_status->status, OrderStatus::kNotOk);
  EXPECT_EQ(decision.final_status->detail, "charge failed: insufficient funds; compensated: release_stock");
  EXPECT_EQ(decision.final_status->steps.size(), 3u);
  EXPECT_EQ(decision.final_status->steps.back().step, Step::kReleaseStock);
  EXPECT_TRUE(saga.state().to_compensate.empty());
  EXPECT_EQ(saga.state().phase, SagaPhase::kEnded);
}

TEST(SagaAggregate, TreatsNotOkCompensationReplyAsAcknowledgement) {
  Saga saga;
  saga.Place();
  saga.Reply(Step::kReserveStock, true);
  saga.Reply(Step::kCharge, false, "card declined");
  const Decision decision = saga.Reply(Step::kReleaseStock, false, "already released");

  ASSERT_TRUE(decision.final_status.has_value());
  EXPECT_EQ(decision.final_status->status, OrderStatus::kNotOk);
  EXPECT_EQ(decision.final_status->detail, "charge failed: card declined; compensated: release_stock");
  EXPECT_FALSE(decision.final_status->steps.back().ok);
}

TEST(SagaAggregate, EndsOkWithDetailWhenNotificationFails) {
  Saga saga;
  saga.Place();
  saga.Reply(Step::kReserveStock, true);
  saga.Reply(Step::kCharge, true);
  const Decision decision = saga.Reply(Step::kNotify, false, "smtp unavailable");

  EXPECT_TRUE(decision.commands.empty());
  ASSERT_TRUE(decision.final_status.has_value());
  EXPECT_EQ(decision.final_status->status, OrderStatus::kOk);
  EXPECT_EQ(decision.final_status->detail, "notify failed: smtp unavailable");
  EXPECT_EQ(saga.state().notes, std::vector<std::string>{"notify failed: smtp unavailable"});
}

TEST(SagaAggregate, NeverReleasesStockAfterChargeSucceeded) {
  Saga saga;
  saga.Place();
  saga.Reply(Step::kReserveStock, true);
  saga.Reply(Step::kCharge, true);
  saga.Reply(Step::kNotify, false, "bounced");

  EXPECT_TRUE(EventsOf<StepRequested>(saga.log()).size() == 3u);
  for (const StepRequested& requested : EventsOf<StepRequested>(saga.log())) {
    EXPECT_NE(requested.step, Step::kReleaseStock);
  }
  EXPECT_EQ(saga.state().status, OrderStatus::kOk);
}

// ---- stale and misdirected input ----

TEST(SagaAggregate, IgnoresDuplicateReply) {
  Saga saga;
  saga.Place();
  saga.Reply(Step::kReserveStock, true);
  const SagaState after_first = saga.state();
  EXPECT_TRUE(saga.Reply(Step::kReserveStock, true, "", 1).empty());
  EXPECT_TRUE(saga.Reply(Step::kReserveStock, false, "late contradicting reply", 1).empty());
  EXPECT_EQ(saga.state(), after_first);
}

TEST(SagaAggregate, IgnoresReplyForStepNotAwaited) {
  Saga saga;
  saga.Place();
  const SagaState before = saga.state();
  EXPECT_TRUE(saga.Reply(Step::kCharge, true, "", 1).empty());
  EXPECT_TRUE(saga.Reply(Step::kNotify, false, "", 1).empty());
  EXPECT_TRUE(saga.Reply(Step::kReleaseStock, true, "", 1).empty());
  EXPECT_TRUE(saga.Reply(Step::kUnknown, true, "", 1).empty());
  EXPECT_EQ(saga.state(), before);
}

TEST(SagaAggregate, AcceptsReplyToAnEarlierAttemptOfTheAwaitedStep) {
  Saga saga;
  saga.Place();
  saga.Expire();
  ASSERT_EQ(saga.state().pending->attempt, 2);
  const Decision decision = saga.Reply(Step::kReserveStock, true, "reserved", 1);
  EXPECT_EQ(RequestedSteps(decision), std::vector<Step>{Step::kCharge});
  // The reply to attempt 2 then arrives too: the step is no longer awaited.
  EXPECT_TRUE(saga.Reply(Step::kReserveStock, true, "reserved", 2).empty());
}

TEST(SagaAggregate, IgnoresRepliesAndTicksBeforeStart) {
  const SagaDefinition def = OrderSagaDefinition();
  const SagaState empty;
  const StepReply reply{.step = Step::kReserveStock, .attempt = 1, .ok = true, .detail = ""};
  EXPECT_TRUE(Decide(def, empty, reply, kStart).empty());
  EXPECT_TRUE(Decide(def, empty, Tick{.now_ms = kStart + 1'000'000}, kStart + 1'000'000).empty());
}

TEST(SagaAggregate, IgnoresEveryInputAfterEnd) {
  Saga saga;
  saga.Place();
  saga.Reply(Step::kReserveStock, false, "out of stock");
  ASSERT_EQ(saga.state().phase, SagaPhase::kEnded);
  const SagaState ended = saga.state();

  EXPECT_TRUE(saga.Place().empty());
  EXPECT_TRUE(saga.Reply(Step::kReserveStock, true, "", 1).empty());
  EXPECT_TRUE(saga.Reply(Step::kCharge, true, "", 1).empty());
  EXPECT_TRUE(saga.Reply(Step::kReleaseStock, true, "", 1).empty());
  EXPECT_TRUE(saga.TickAt(kStart + 10'000'000).empty());
  EXPECT_EQ(saga.state(), ended);
}

// ---- deadlines ----

TEST(SagaAggregate, IgnoresTickBeforeDeadline) {
  Saga saga;
  saga.Place();
  const SagaState before = saga.state();
  EXPECT_TRUE(saga.TickAt(kStart + 9'999).empty());
  EXPECT_EQ(saga.state(), before);
  // The deadline itself is the first moment the request counts as timed out.
  EXPECT_FALSE(saga.TickAt(kStart + 10'000).empty());
}

TEST(SagaAggregate, RetriesTimedOutStepWithGrowingDeadline) {
  Saga saga(OrderSagaDefinition(
      {.max_attempts = 5, .deadline_ms = 1'000, .backoff_multiplier = 2.0, .max_deadline_ms = 5'000}));
  saga.Place();
  EXPECT_EQ(saga.state().pending->deadline_ms, kStart + 1'000);

  // Attempt k waits 1000 * 2^(k-1) ms, capped at 5000.
  const std::vector<int64_t> waits{2'000, 4'000, 5'000, 5'000};
  int32_t attempt = 1;
  for (int64_t wait : waits) {
    const TimeMs timed_out_at = saga.state().pending->deadline_ms;
    const Decision decision = saga.Expire();
    ASSERT_EQ(decision.events.size(), 2u);
    EXPECT_EQ(decision.events[0],
              (SagaEvent{.at_ms = timed_out_at,
                         .body = StepTimedOut{.step = Step::kReserveStock,
                                              .attempt = attempt,
                                              .outcome = StepOutcome::kRetry}}));
    EXPECT_EQ(decision.events[1],
              (SagaEvent{.at_ms = timed_out_at,
                         .body = StepRequested{.step = Step::kReserveStock,
                                               .attempt = attempt + 1,
                                               .deadline_ms = timed_out_at + wait,
                                               .legs = {1}}}));
    ASSERT_EQ(decision.commands.size(), 1u);
    EXPECT_EQ(decision.commands[0],
              (StepCommand{.step = Step::kReserveStock, .attempt = attempt + 1, .order = MakeOrder(), .leg = 1}));
    ++attempt;
  }
  EXPECT_EQ(saga.state().history.size(), 4u);
  EXPECT_EQ(saga.state().history[0], (StepRecord{.step = Step::kReserveStock,
                                                 .attempt = 1,
                                                 .ok = false,
                                                 .at_ms = kStart + 1'000,
                                                 .detail = "timed out"}));
  EXPECT_EQ(saga.state().phase, SagaPhase::kForward);
}

TEST(SagaAggregate, ReleasesStockWhenReservationTimesOutAfterLastAttempt) {
  Saga saga;  // 3 attempts: 10 s, 20 s, 40 s
  saga.Place();
  EXPECT_EQ(RequestedSteps(saga.Expire()), std::vector<Step>{Step::kReserveStock});
  EXPECT_EQ(RequestedSteps(saga.Expire()), std::vector<Step>{Step::kReserveStock});
  const TimeMs last_deadline = saga.state().pending->deadline_ms;
  EXPECT_EQ(last_deadline, kStart + 10'000 + 20'000 + 40'000);

  // The warehouse may have reserved without its reply getting through, so the
  // reservation is released even though it was never confirmed.
  Decision decision = saga.Expire();
  EXPECT_EQ(decision.events[0].body,
            (SagaEventBody{StepTimedOut{.step = Step::kReserveStock,
                                        .attempt = 3,
                                        .outcome = StepOutcome::kCompensate,
                                        .compensations = {Step::kReleaseStock}}}));
  EXPECT_EQ(RequestedSteps(decision), std::vector<Step>{Step::kReleaseStock});
  EXPECT_EQ(saga.state().phase, SagaPhase::kCompensating);
  EXPECT_EQ(saga.state().pending,
            (PendingRequest{
                .step = Step::kReleaseStock, .attempt = 1, .deadline_ms = last_deadline + 10'000}));

  decision = saga.Reply(Step::kReleaseStock, true);
  ASSERT_TRUE(decision.final_status.has_value());
  EXPECT_EQ(decision.final_status->status, OrderStatus::kNotOk);
  EXPECT_EQ(decision.final_status->detail,
            "reserve_stock timed out after 3 attempts; compensated: release_stock");
  EXPECT_EQ(decision.final_status->steps.size(), 4u);
}

TEST(SagaAggregate, EndsOkWithNoteWhenNotificationTimesOutAfterLastAttempt) {
  Saga saga;
  saga.Place();
  saga.Reply(Step::kReserveStock, true);
  saga.Reply(Step::kCharge, true);
  saga.Expire();
  saga.Expire();
  const Decision decision = saga.Expire();

  EXPECT_TRUE(decision.commands.empty());
  ASSERT_TRUE(decision.final_status.has_value());
  EXPECT_EQ(decision.final_status->status, OrderStatus::kOk);
  EXPECT_EQ(decision.final_status->detail, "notify timed out after 3 attempts");
  for (const StepRequested& requested : EventsOf<StepRequested>(saga.log())) {
    EXPECT_NE(requested.step, Step::kReleaseStock);
  }
}

TEST(SagaAggregate, NamesASingleAttemptInTheSingular) {
  Saga saga(OrderSagaDefinition({.max_attempts = 1}));
  saga.Place();
  saga.Reply(Step::kReserveStock, true);
  saga.Reply(Step::kCharge, true);
  const Decision decision = saga.Expire();
  ASSERT_TRUE(decision.final_status.has_value());
  EXPECT_EQ(decision.final_status->detail, "notify timed out after 1 attempt");
}

TEST(SagaAggregate, RetriesChargeBeyondMaxAttemptsUntilAnswered) {
  Saga saga;
  saga.Place();
  saga.Reply(Step::kReserveStock, true);
  for (int32_t attempt = 1; attempt <= 10; ++attempt) {
    const TimeMs now = saga.state().pending->deadline_ms;
    const Decision decision = saga.Expire();
    ASSERT_EQ(decision.events.size(), 2u);
    EXPECT_EQ(decision.events[0].body,
              (SagaEventBody{
                  StepTimedOut{.step = Step::kCharge, .attempt = attempt, .outcome = StepOutcome::kRetry}}));
    // Waits 20 s, 40 s, then the 60 s cap.
    const int64_t wait = attempt == 1 ? 20'000 : attempt == 2 ? 40'000 : 60'000;
    EXPECT_EQ(decision.events[1].body,
              (SagaEventBody{
                  StepRequested{.step = Step::kCharge, .attempt = attempt + 1, .deadline_ms = now + wait}}));
  }
  EXPECT_EQ(saga.state().phase, SagaPhase::kForward);

  const Decision decision = saga.Reply(Step::kCharge, true);
  EXPECT_EQ(RequestedSteps(decision), std::vector<Step>{Step::kNotify});
  saga.Reply(Step::kNotify, true);
  EXPECT_EQ(saga.state().status, OrderStatus::kOk);
  EXPECT_EQ(saga.state().detail, "");
}

TEST(SagaAggregate, RetriesCompensationUntilAcknowledged) {
  Saga saga;
  saga.Place();
  saga.Reply(Step::kReserveStock, true);
  saga.Reply(Step::kCharge, false, "declined");
  ASSERT_EQ(saga.state().pending->step, Step::kReleaseStock);

  // Compensations ignore max_attempts (3): keep going well past it.
  const std::vector<int64_t> waits{20'000, 40'000, 60'000, 60'000, 60'000};
  int32_t attempt = 1;
  for (int64_t wait : waits) {
    const TimeMs now = saga.state().pending->deadline_ms;
    const Decision decision = saga.Expire();
    EXPECT_EQ(decision.events[0].body,
              (SagaEventBody{
                  StepTimedOut{.step = Step::kReleaseStock, .attempt = attempt, .outcome = StepOutcome::kRetry}}));
    EXPECT_EQ(decision.commands,
              (std::vector<StepCommand>{
                  {.step = Step::kReleaseStock, .attempt = attempt + 1, .order = MakeOrder(), .leg = 1}}));
    EXPECT_EQ(saga.state().pending->deadline_ms, now + wait);
    EXPECT_FALSE(decision.final_status.has_value());
    ++attempt;
  }
  EXPECT_EQ(saga.state().phase, SagaPhase::kCompensating);

  const Decision decision = saga.Reply(Step::kReleaseStock, true, "released");
  ASSERT_TRUE(decision.final_status.has_value());
  EXPECT_EQ(decision.final_status->detail, "charge failed: declined; compensated: release_stock");
}

TEST(SagaAggregate, CompensationUsesCompensationPolicyDeadline) {
  SagaDefinition def = OrderSagaDefinition();
  def.compensation_policy.deadline_ms = 3'000;
  Saga saga(def);
  saga.Place();
  saga.Reply(Step::kReserveStock, true);
  saga.Reply(Step::kCharge, false, "declined");
  EXPECT_EQ(saga.state().pending,
            (PendingRequest{.step = Step::kReleaseStock, .attempt = 1, .deadline_ms = saga.now() + 3'000}));
}

// ---- event sourcing properties ----

// Runs a saga through retries, a failure and a compensation.
Saga EventfulSaga() {
  Saga saga;
  saga.Place();
  saga.Expire();
  saga.Reply(Step::kReserveStock, true, "reserved", 1);
  saga.Expire();
  saga.Expire();
  saga.Expire();
  saga.Reply(Step::kCharge, false, "declined");
  saga.Expire();
  saga.Reply(Step::kReleaseStock, true, "released");
  return saga;
}

TEST(SagaAggregate, ReplayingRecordedEventsRebuildsTheSameState) {
  for (const Saga& saga : {EventfulSaga(), [] {
                             Saga happy;
                             happy.Place();
                             happy.Reply(Step::kReserveStock, true);
                             happy.Reply(Step::kCharge, true);
                             happy.Reply(Step::kNotify, false, "bounced");
                             return happy;
                           }()}) {
    ASSERT_EQ(saga.state().phase, SagaPhase::kEnded);
    SagaState replayed;
    for (const SagaEvent& event : saga.log()) replayed = Apply(saga.def(), replayed, event);
    EXPECT_EQ(replayed, saga.state());
    EXPECT_EQ(FinalStatusOf(replayed), FinalStatusOf(saga.state()));
  }
}

SagaState Fold(const SagaDefinition& def, const std::vector<SagaEvent>& log) {
  SagaState state;
  for (const SagaEvent& event : log) state = Apply(def, std::move(state), event);
  return state;
}

// Removes what schema version 2 added, as an event recorded before it reads.
std::vector<SagaEvent> AsRecordedBeforeOutcomes(std::vector<SagaEvent> log) {
  for (SagaEvent& event : log) {
    if (auto* replied = std::get_if<StepReplied>(&event.body)) {
      replied->outcome = StepOutcome::kUnrecorded;
      replied->compensations.clear();
    } else if (auto* timed_out = std::get_if<StepTimedOut>(&event.body)) {
      timed_out->outcome = StepOutcome::kUnrecorded;
      timed_out->compensations.clear();
    }
  }
  return log;
}

TEST(SagaAggregate, HistoryWrittenWithMoreAttemptsFoldsTheSameUnderFewer) {
  // Written by an orchestrator run with --max-attempts 5: the reservation
  // times out 4 times, then succeeds.
  Saga saga(OrderSagaDefinition({.max_attempts = 5}));
  saga.Place();
  for (int i = 0; i < 4; ++i) saga.Expire();
  saga.Reply(Step::kReserveStock, true);
  saga.Reply(Step::kCharge, true);
  saga.Reply(Step::kNotify, true);
  ASSERT_EQ(saga.state().status, OrderStatus::kOk);

  for (int32_t attempts : {1, 2, 3, 5, 100}) {
    SCOPED_TRACE(attempts);
    EXPECT_EQ(Fold(OrderSagaDefinition({.max_attempts = attempts}), saga.log()), saga.state());
  }
}

TEST(SagaAggregate, HistoryWrittenWithFewerAttemptsFoldsTheSameUnderMore) {
  // --max-attempts 2: the reservation gives up after 2 timeouts and is released.
  Saga saga(OrderSagaDefinition({.max_attempts = 2}));
  saga.Place();
  saga.Expire();
  saga.Expire();
  ASSERT_EQ(saga.state().phase, SagaPhase::kCompensating);
  saga.Reply(Step::kReleaseStock, true);
  ASSERT_EQ(saga.state().status, OrderStatus::kNotOk);

  for (int32_t attempts : {1, 3, 10}) {
    SCOPED_TRACE(attempts);
    EXPECT_EQ(Fold(OrderSagaDefinition({.max_attempts = attempts}), saga.log()), saga.state());
  }
}

TEST(SagaAggregate, CompensationPlanComesFromTheEventNotTheDefinition) {
  Saga saga;
  saga.Place();
  saga.Reply(Step::kReserveStock, true);
  saga.Reply(Step::kCharge, false, "declined");
  // A definition in which nothing is compensatable folds the same recorded plan.
  SagaDefinition without_compensations = OrderSagaDefinition();
  for (StepDefinition& step : without_compensations.steps) step.compensation.reset();
  const SagaState state = Fold(without_compensations, saga.log());
  EXPECT_EQ(state.phase, SagaPhase::kCompensating);
  EXPECT_EQ(state.to_compensate, std::vector<Step>{Step::kReleaseStock});
  EXPECT_EQ(state, saga.state());
}

TEST(SagaAggregate, HistoryRecordedBeforeOutcomesFoldsAsBefore) {
  // Events of schema version 1 carry no outcome: they fold with the
  // definition, as the orchestrator that wrote them did.
  Saga saga;
  saga.Place();
  saga.Expire();
  saga.Expire();
  saga.Expire();  // the last of 3 attempts: release
  saga.Reply(Step::kReleaseStock, true);
  const std::vector<SagaEvent> legacy = AsRecordedBeforeOutcomes(saga.log());
  EXPECT_EQ(Fold(saga.def(), legacy), saga.state());

  Saga declined;
  declined.Place();
  declined.Reply(Step::kReserveStock, true);
  declined.Reply(Step::kCharge, false, "declined");
  declined.Reply(Step::kReleaseStock, true);
  EXPECT_EQ(Fold(declined.def(), AsRecordedBeforeOutcomes(declined.log())), declined.state());
}

TEST(SagaAggregate, RecordsTheOutcomeOfEveryReplyAndTimeout) {
  Saga saga(OrderSagaDefinition({.max_attempts = 2}));
  saga.Place();
  saga.Expire();
  saga.Reply(Step::kReserveStock, true);
  saga.Reply(Step::kCharge, true);
  saga.Expire();
  saga.Expire();
  std::vector<std::pair<StepOutcome, Step>> outcomes;
  for (const SagaEvent& event : saga.log()) {
    if (const auto* r = std::get_if<StepReplied>(&event.body)) outcomes.emplace_back(r->outcome, r->step);
    if (const auto* t = std::get_if<StepTimedOut>(&event.body)) outcomes.emplace_back(t->outcome, t->step);
  }
  EXPECT_EQ(outcomes, (std::vector<std::pair<StepOutcome, Step>>{{StepOutcome::kRetry, Step::kReserveStock},
                                                                  {StepOutcome::kSucceeded, Step::kReserveStock},
                                                                  {StepOutcome::kSucceeded, Step::kCharge},
                                                                  {StepOutcome::kRetry, Step::kNotify},
                                                                  {StepOutcome::kNoted, Step::kNotify}}));
  EXPECT_EQ(saga.state().status, OrderStatus::kOk);
}

TEST(SagaAggregate, DecideIsDeterministic) {
  const SagaDefinition def = OrderSagaDefinition();
  const Saga saga = [] {
    Saga running;
    running.Place();
    running.Reply(Step::kReserveStock, true);
    return running;
  }();
  const SagaState snapshot = saga.state();
  const std::vector<SagaInput> inputs{
      OrderPlaced{.order = MakeOrder()},
      StepReply{.step = Step::kCharge, .attempt = 1, .ok = false, .detail = "declined"},
      StepReply{.step = Step::kCharge, .attempt = 1, .ok = true, .detail = ""},
      Tick{.now_ms = kStart + 1'000'000},
  };
  for (const SagaInput& input : inputs) {
    const Decision first = Decide(def, saga.state(), input, kStart + 1'000'000);
    const Decision second = Decide(def, saga.state(), input, kStart + 1'000'000);
    EXPECT_EQ(first.events, second.events);
    EXPECT_EQ(first.commands, second.commands);
    EXPECT_EQ(first.final_status, second.final_status);
  }
  EXPECT_EQ(saga.state(), snapshot);  // Decide never changes its input
}

TEST(SagaAggregate, DecisionFinalStatusMatchesTheEndedState) {
  Saga saga = EventfulSaga();
  const std::vector<SagaEnded> ended = EventsOf<SagaEnded>(saga.log());
  ASSERT_EQ(ended.size(), 1u);
  EXPECT_EQ(ended[0].detail, "charge failed: declined; compensated: release_stock");
  const FinalStatus status = FinalStatusOf(saga.state());
  EXPECT_EQ(status.status, OrderStatus::kNotOk);
  EXPECT_EQ(status.detail, ended[0].detail);
  EXPECT_EQ(status.steps, saga.state().history);
  // reserve: timeout + reply; charge: 3 timeouts + reply; release: timeout + reply.
  EXPECT_EQ(status.steps.size(), 8u);
}

TEST(SagaAggregate, VersionCountsAppliedEvents) {
  const Saga saga = EventfulSaga();
  EXPECT_EQ(saga.state().version, static_cast<int64_t>(saga.log().size()));
}

// ---- definitions as data ----

// Steps this build has no name for: a definition may still use them.
constexpr Step kReserveCredit = static_cast<Step>(10);
constexpr Step kReleaseCredit = static_cast<Step>(11);

SagaDefinition FourStepDefinition() {
  const StepPolicy policy{.max_attempts = 2, .deadline_ms = 1'000, .backoff_multiplier = 1.0};
  SagaDefinition def;
  def.name = "order_with_credit";
  def.steps = {
      {.step = Step::kReserveStock,
       .kind = StepKind::kCompensatable,
       .service = Service::kWarehouse,
       .compensation = Step::kReleaseStock,
       .policy = policy},
      {.step = kReserveCredit,
       .kind = StepKind::kCompensatable,
       .service = Service::kPayment,
       .compensation = kReleaseCredit,
       .policy = policy},
      {.step = Step::kCharge,
       .kind = StepKind::kPivot,
       .service = Service::kPayment,
       .compensation = std::nullopt,
       .policy = policy},
      {.step = Step::kNotify,
       .kind = StepKind::kRetriable,
       .service = Service::kNotification,
       .compensation = std::nullopt,
       .policy = policy},
  };
  def.compensation_policy = policy;
  return def;
}

TEST(SagaAggregate, CustomDefinitionCompensatesEveryCompensatableStepInReverseOrder) {
  Saga saga(FourStepDefinition());
  saga.Place();
  EXPECT_EQ(RequestedSteps(saga.Reply(Step::kReserveStock, true)), std::vector<Step>{kReserveCredit});
  EXPECT_EQ(RequestedSteps(saga.Reply(kReserveCredit, true)), std::vector<Step>{Step::kCharge});

  EXPECT_EQ(RequestedSteps(saga.Reply(Step::kCharge, false, "declined")), std::vector<Step>{kReleaseCredit});
  EXPECT_EQ(saga.state().to_compensate, (std::vector<Step>{kReleaseCredit, Step::kReleaseStock}));
  EXPECT_EQ(saga.def().ServiceFor(kReleaseCredit), Service::kPayment);
  EXPECT_EQ(RequestedSteps(saga.Reply(kReleaseCredit, true)), std::vector<Step>{Step::kReleaseStock});
  const Decision decision = saga.Reply(Step::kReleaseStock, true);

  ASSERT_TRUE(decision.final_status.has_value());
  EXPECT_EQ(decision.final_status->status, OrderStatus::kNotOk);
  EXPECT_EQ(decision.final_status->detail, "charge failed: declined; compensated: step_11, release_stock");
}

TEST(SagaAggregate, CustomDefinitionCompensatesOnlyStepsThatSucceeded) {
  Saga saga(FourStepDefinition());
  saga.Place();
  saga.Reply(Step::kReserveStock, true);
  // The second compensatable step fails: only the first one is undone.
  EXPECT_EQ(RequestedSteps(saga.Reply(kReserveCredit, false, "no credit")),
            std::vector<Step>{Step::kReleaseStock});
  const Decision decision = saga.Reply(Step::kReleaseStock, true);
  ASSERT_TRUE(decision.final_status.has_value());
  EXPECT_EQ(decision.final_status->detail, "step_10 failed: no credit; compensated: release_stock");
}

TEST(SagaAggregate, CustomPivotWithLimitedAttemptsCompensatesWhenItNeverAnswers) {
  Saga saga(FourStepDefinition());
  saga.Place();
  saga.Reply(Step::kReserveStock, true);
  saga.Reply(kReserveCredit, true);
  EXPECT_EQ(RequestedSteps(saga.Expire()), std::vector<Step>{Step::kCharge});
  // A pivot has no compensation of its own: only the earlier steps are undone.
  EXPECT_EQ(RequestedSteps(saga.Expire()), std::vector<Step>{kReleaseCredit});
  saga.Reply(kReleaseCredit, true);
  const Decision decision = saga.Reply(Step::kReleaseStock, true);
  ASSERT_TRUE(decision.final_status.has_value());
  EXPECT_EQ(decision.final_status->detail,
            "charge timed out after 2 attempts; compensated: step_11, release_stock");
}

TEST(SagaAggregate, CustomDefinitionRunsEveryStepWhenAllSucceed) {
  Saga saga(FourStepDefinition());
  saga.Place();
  saga.Reply(Step::kReserveStock, true);
  saga.Reply(kReserveCredit, true);
  saga.Reply(Step::kCharge, true);
  const Decision decision = saga.Reply(Step::kNotify, true);
  ASSERT_TRUE(decision.final_status.has_value());
  EXPECT_EQ(decision.final_status->status, OrderStatus::kOk);
  EXPECT_EQ(decision.final_status->steps.size(), 4u);
}

// ---- the reserve step fanned out per item ----

// Four lines of three items: item 1 on two lines, items 2 and 3.
Order MultiItemOrder() {
  Order order = MakeOrder();
  order.items = {Item{.item_id = 1, .quantity = 2, .price = 50}, Item{.item_id = 2, .quantity = 1, .price = 100},
                 Item{.item_id = 1, .quantity = 3, .price = 50}, Item{.item_id = 3, .quantity = 4, .price = 0}};
  return order;
}

std::vector<LegKey> LegsOf(const Decision& decision) {
  std::vector<LegKey> legs;
  for (const StepCommand& command : decision.commands) legs.push_back(command.leg);
  return legs;
}

SagaDefinition WithoutFanOut(SagaDefinition def = OrderSagaDefinition()) {
  for (StepDefinition& step : def.steps) step.fan_out = FanOut::kNone;
  return def;
}

TEST(SagaFanOut, TheDefinitionFansOutTheReservationAndItsReleasePerItem) {
  const SagaDefinition def = OrderSagaDefinition();
  EXPECT_EQ(def.FanOutOf(Step::kReserveStock), FanOut::kPerItem);
  EXPECT_EQ(def.FanOutOf(Step::kReleaseStock), FanOut::kPerItem);
  EXPECT_EQ(def.FanOutOf(Step::kCharge), FanOut::kNone);
  EXPECT_EQ(def.FanOutOf(Step::kNotify), FanOut::kNone);
}

TEST(SagaFanOut, SendsOneReserveCommandPerItemWithOnlyThatItemsLines) {
  Saga saga(OrderSagaDefinition(), MultiItemOrder());
  const Decision decision = saga.Place();
  const auto requested = EventsOf<StepRequested>(decision.events);
  ASSERT_EQ(requested.size(), 1u);
  EXPECT_EQ(requested[0].legs, (std::vector<LegKey>{1, 2, 3}));
  ASSERT_EQ(LegsOf(decision), (std::vector<LegKey>{1, 2, 3}));
  const Order order = MultiItemOrder();
  EXPECT_EQ(decision.commands[0].order.items, (std::vector<Item>{order.items[0], order.items[2]}));
  EXPECT_EQ(decision.commands[1].order.items, (std::vector<Item>{order.items[1]}));
  EXPECT_EQ(decision.commands[2].order.items, (std::vector<Item>{order.items[3]}));
  for (const StepCommand& command : decision.commands) {
    EXPECT_EQ(command.step, Step::kReserveStock);
    EXPECT_EQ(command.order.order_id, kOrderId);
    EXPECT_EQ(CommandKey(kOrderId, command), ItemKey(command.leg)) << "a leg is keyed by its item";
  }
}

TEST(SagaFanOut, WaitsForEveryLegThenCharges) {
  Saga saga(OrderSagaDefinition(), MultiItemOrder());
  saga.Place();
  for (LegKey leg : {3, 1}) {
    const Decision decision = saga.ReplyLeg(Step::kReserveStock, leg, true);
    ASSERT_EQ(decision.events.size(), 1u);
    EXPECT_EQ(std::get<StepReplied>(decision.events[0].body).outcome, StepOutcome::kLegAnswered);
    EXPECT_TRUE(decision.commands.empty());
    ASSERT_TRUE(saga.state().pending.has_value());
    EXPECT_EQ(saga.state().pending->step, Step::kReserveStock);
  }
  const Decision last = saga.ReplyLeg(Step::kReserveStock, 2, true);
  EXPECT_EQ(std::get<StepReplied>(last.events[0].body).outcome, StepOutcome::kSucceeded);
  EXPECT_EQ(RequestedSteps(last), std::vector<Step>{Step::kCharge});
  EXPECT_EQ(LegsOf(last), std::vector<LegKey>{kNoLeg}) << "the charge is one command, keyed by saga";
  saga.Reply(Step::kCharge, true);
  saga.Reply(Step::kNotify, true);
  EXPECT_EQ(saga.state().status, OrderStatus::kOk);
  EXPECT_EQ(saga.state().succeeded, (std::vector<Step>{Step::kReserveStock, Step::kCharge, Step::kNotify}));
  // Each leg's reply is in the history, with its item.
  std::vector<LegKey> answered;
  for (const StepRecord& record : saga.state().history) {
    if (record.step == Step::kReserveStock) answered.push_back(record.leg);
  }
  EXPECT_EQ(answered, (std::vector<LegKey>{3, 1, 2}));
}

TEST(SagaFanOut, AFailedLegReleasesTheLegsThatSucceededAndThoseNotAnswered) {
  Saga saga(OrderSagaDefinition(), MultiItemOrder());
  saga.Place();
  saga.ReplyLeg(Step::kReserveStock, 1, true);
  const Decision failed = saga.ReplyLeg(Step::kReserveStock, 2, false, "not enough stock for item 2");
  const auto replied = EventsOf<StepReplied>(failed.events);
  ASSERT_EQ(replied.size(), 1u);
  EXPECT_EQ(replied[0].outcome, StepOutcome::kCompensate);
  EXPECT_EQ(replied[0].compensations, std::vector<Step>{Step::kReleaseStock});
  // Leg 3 has not answered: it may still reserve, so it is released too. Leg 2 reserved nothing.
  EXPECT_EQ(RequestedSteps(failed), (std::vector<Step>{Step::kReleaseStock, Step::kReleaseStock}));
  EXPECT_EQ(LegsOf(failed), (std::vector<LegKey>{1, 3}));
  EXPECT_EQ(saga.state().phase, SagaPhase::kCompensating);

  // Leg 3's reservation answers late: the saga no longer waits for it.
  EXPECT_TRUE(saga.ReplyLeg(Step::kReserveStock, 3, true).empty());
  const Decision first_ack = saga.ReplyLeg(Step::kReleaseStock, 3, true);
  EXPECT_EQ(std::get<StepReplied>(first_ack.events[0].body).outcome, StepOutcome::kLegAnswered);
  EXPECT_FALSE(first_ack.final_status.has_value());
  const Decision last_ack = saga.ReplyLeg(Step::kReleaseStock, 1, true);
  ASSERT_TRUE(last_ack.final_status.has_value());
  EXPECT_EQ(last_ack.final_status->status, OrderStatus::kNotOk);
  EXPECT_EQ(last_ack.final_status->detail,
            "reserve_stock failed: not enough stock for item 2; compensated: release_stock");
}

TEST(SagaFanOut, AFailedPaymentReleasesEveryLeg) {
  Saga saga(OrderSagaDefinition(), MultiItemOrder());
  saga.Place();
  for (LegKey leg : {1, 2, 3}) saga.ReplyLeg(Step::kReserveStock, leg, true);
  const Decision declined = saga.Reply(Step::kCharge, false, "declined");
  EXPECT_EQ(LegsOf(declined), (std::vector<LegKey>{1, 2, 3}));
  for (const StepCommand& command : declined.commands) EXPECT_EQ(command.step, Step::kReleaseStock);
  // A NOT OK release is an acknowledgement too.
  saga.ReplyLeg(Step::kReleaseStock, 2, false, "odd");
  saga.ReplyLeg(Step::kReleaseStock, 1, true);
  EXPECT_EQ(saga.state().phase, SagaPhase::kCompensating);
  saga.ReplyLeg(Step::kReleaseStock, 3, true);
  EXPECT_EQ(saga.state().status, OrderStatus::kNotOk);
  EXPECT_EQ(saga.state().detail, "charge failed: declined; compensated: release_stock");
}

TEST(SagaFanOut, IgnoresDuplicateLateAndForeignLegReplies) {
  Saga saga(OrderSagaDefinition(), MultiItemOrder());
  saga.Place();
  saga.ReplyLeg(Step::kReserveStock, 1, true);
  const SagaState before = saga.state();
  EXPECT_TRUE(saga.ReplyLeg(Step::kReserveStock, 1, true).empty()) << "a duplicate";
  EXPECT_TRUE(saga.ReplyLeg(Step::kReserveStock, 1, false).empty()) << "a different answer for an answered leg";
  EXPECT_TRUE(saga.ReplyLeg(Step::kReserveStock, 99, true).empty()) << "an item the order does not have";
  EXPECT_TRUE(saga.ReplyLeg(Step::kReserveStock, kNoLeg, true).empty()) << "a reply for the step as a whole";
  EXPECT_TRUE(saga.ReplyLeg(Step::kReleaseStock, 2, true).empty()) << "a step not awaited";
  EXPECT_EQ(saga.state(), before);
  saga.ReplyLeg(Step::kReserveStock, 2, true);
  saga.ReplyLeg(Step::kReserveStock, 3, true);
  EXPECT_TRUE(saga.ReplyLeg(Step::kReserveStock, 3, true).empty()) << "late, the step is over";
  // A leg for a step that is not fanned out.
  EXPECT_TRUE(saga.ReplyLeg(Step::kCharge, 1, true).empty());
  EXPECT_EQ(saga.state().pending->step, Step::kCharge);
}

TEST(SagaFanOut, ARetryGoesOnlyToTheLegsThatDidNotAnswer) {
  Saga saga(OrderSagaDefinition(), MultiItemOrder());
  saga.Place();
  saga.ReplyLeg(Step::kReserveStock, 2, true);
  const Decision retry = saga.Expire();
  EXPECT_EQ(EventsOf<StepTimedOut>(retry.events).at(0).outcome, StepOutcome::kRetry);
  EXPECT_EQ(LegsOf(retry), (std::vector<LegKey>{1, 3}));
  for (const StepCommand& command : retry.commands) EXPECT_EQ(command.attempt, 2);
  // A reply to the first attempt still answers its leg.
  saga.ReplyLeg(Step::kReserveStock, 1, true, "", 1);
  const Decision retry3 = saga.Expire();
  EXPECT_EQ(LegsOf(retry3), std::vector<LegKey>{3});
  // The last attempt times out: every leg that did not fail is released (3's effect is unknown).
  const Decision gave_up = saga.Expire();
  EXPECT_EQ(EventsOf<StepTimedOut>(gave_up.events).at(0).outcome, StepOutcome::kCompensate);
  EXPECT_EQ(LegsOf(gave_up), (std::vector<LegKey>{1, 2, 3}));
  // An unanswered release is sent again, to the legs that did not acknowledge.
  saga.ReplyLeg(Step::kReleaseStock, 2, true);
  EXPECT_EQ(LegsOf(saga.Expire()), (std::vector<LegKey>{1, 3}));
}

TEST(SagaFanOut, WhenEveryLegFailedThereIsNothingToRelease) {
  Order order = MakeOrder();  // one item: one leg
  Saga saga(OrderSagaDefinition(), order);
  saga.Place();
  const Decision failed = saga.Reply(Step::kReserveStock, false, "not enough stock");
  EXPECT_TRUE(failed.commands.empty());
  ASSERT_TRUE(failed.final_status.has_value());
  EXPECT_EQ(failed.final_status->detail, "reserve_stock failed: not enough stock");
}

TEST(SagaFanOut, FoldingTheLogRebuildsTheLegs) {
  for (bool payment_ok : {true, false}) {
    Saga saga(OrderSagaDefinition(), MultiItemOrder());
    saga.Place();
    saga.ReplyLeg(Step::kReserveStock, 3, true);
    saga.Expire();
    saga.ReplyLeg(Step::kReserveStock, 1, true);
    saga.ReplyLeg(Step::kReserveStock, 2, true);
    saga.Reply(Step::kCharge, payment_ok, payment_ok ? "" : "declined");
    if (!payment_ok) {
      for (LegKey leg : {2, 1, 3}) saga.ReplyLeg(Step::kReleaseStock, leg, true);
    } else {
      saga.Reply(Step::kNotify, true);
    }
    ASSERT_EQ(saga.state().phase, SagaPhase::kEnded);
    // Apply needs nothing but the events: a definition without fan-out folds them the same.
    EXPECT_EQ(Fold(saga.def(), saga.log()), saga.state());
    EXPECT_EQ(Fold(WithoutFanOut(), saga.log()), saga.state());
  }
}

TEST(SagaFanOut, ALogWrittenBeforeFanOutFoldsAndCarriesOnAsOneCommand) {
  // Written by an orchestrator whose reservation was one command per order.
  Saga legacy(WithoutFanOut(), MultiItemOrder());
  legacy.Place();
  legacy.Reply(Step::kReserveStock, true);
  legacy.Reply(Step::kCharge, false, "declined");
  legacy.Reply(Step::kReleaseStock, true);
  ASSERT_EQ(legacy.state().status, OrderStatus::kNotOk);
  EXPECT_EQ(Fold(OrderSagaDefinition(), legacy.log()), legacy.state());
  EXPECT_EQ(Fold(OrderSagaDefinition(), AsRecordedBeforeOutcomes(legacy.log())), legacy.state());

  // A saga in flight across the upgrade: its reservation was one command, so
  // a retry and the release stay one command each.
  Saga in_flight(WithoutFanOut(), MultiItemOrder());
  in_flight.Place();
  const SagaState state = Fold(OrderSagaDefinition(), in_flight.log());
  const Decision retry = Decide(OrderSagaDefinition(), state, Tick{state.pending->deadline_ms}, state.pending->deadline_ms);
  EXPECT_EQ(LegsOf(retry), std::vector<LegKey>{kNoLeg});
  const Decision reply = Decide(OrderSagaDefinition(), state, StepReply{.step = Step::kReserveStock, .attempt = 1, .ok = true}, kStart + 1);
  EXPECT_EQ(RequestedSteps(reply), std::vector<Step>{Step::kCharge});
}

TEST(SagaAggregate, PhaseNames) {
  EXPECT_EQ(ToString(SagaPhase::kNotStarted), "not_started");
  EXPECT_EQ(ToString(SagaPhase::kForward), "running");
  EXPECT_EQ(ToString(SagaPhase::kCompensating), "compensating");
  EXPECT_EQ(ToString(SagaPhase::kEnded), "ended");
}

}  // namespace
}  // namespace sagaflow::core
