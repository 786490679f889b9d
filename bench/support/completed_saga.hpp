#pragma once
// A whole saga that succeeds, decided and folded with the production aggregate,
// for the benchmarks that write a saga history of their own (rebuild, replay).

#include <utility>
#include <vector>

#include "sagaflow/core/saga_aggregate.hpp"
#include "sagaflow/core/saga_definition.hpp"
#include "sagaflow/core/types.hpp"

namespace sagaflow::bench {

struct CompletedSaga {
  /// The events of each decision, in order: one record each, as the orchestrator writes them.
  std::vector<std::vector<core::SagaEvent>> decisions;
  core::SagaState state;
};

/// Order `id` (two items, so the reservation fans out to two legs) placed at
/// `now`, every leg and step answered OK 7 ms apart: 9 events in 5 decisions.
/// The state is ended OK (the benchmarks check it, so a change to the saga
/// cannot make them measure sagas that stop half-way).
inline CompletedSaga MakeCompletedSaga(const core::SagaDefinition& def, core::OrderId id, core::TimeMs now) {
  CompletedSaga out;
  auto feed = [&](const core::SagaInput& input) {
    auto decided = core::Decide(def, out.state, input, now).events;
    if (decided.empty()) return;
    for (const auto& e : decided) out.state = core::Apply(def, std::move(out.state), e);
    out.decisions.push_back(std::move(decided));
  };
  feed(core::OrderPlaced{core::Order{id, 2, core::PaymentType::kCard, core::NotificationType::kEmail,
                                     "2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z", 100, {{10, 2, 45}, {15, 1, 10}}}});
  for (auto step : {core::Step::kReserveStock, core::Step::kCharge, core::Step::kNotify}) {
    std::vector<core::LegKey> legs;
    for (const auto& l : out.state.legs) {
      if (l.step == step && l.status == core::LegStatus::kAwaited) legs.push_back(l.leg);
    }
    if (legs.empty()) legs.push_back(core::kNoLeg);
    for (auto leg : legs) {
      now += 7;
      feed(core::StepReply{step, 1, true, "ok", leg});
    }
  }
  return out;
}

/// The payloads of the records a decision is written as: one SagaEvents, or
/// with `one_per_event` one SagaEvent each, as orchestrators wrote them before
/// a decision's events shared one record.
inline std::vector<core::Payload> DecisionRecords(std::vector<core::SagaEvent> decision, bool one_per_event) {
  std::vector<core::Payload> out;
  if (!one_per_event) {
    out.emplace_back(core::SagaEvents{std::move(decision)});
    return out;
  }
  for (auto& e : decision) out.emplace_back(std::move(e));
  return out;
}

}  // namespace sagaflow::bench
