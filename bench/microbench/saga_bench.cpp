// The saga aggregate: the orchestrator runs Decide + Apply for every input,
// and Apply alone over the event log when it restarts (replay).

#include <benchmark/benchmark.h>

#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "bench_data.hpp"
#include "sagaflow/core/saga_aggregate.hpp"
#include "sagaflow/core/saga_definition.hpp"

namespace sagaflow::bench {
namespace {

using core::Decide;
using core::Decision;
using core::SagaEvent;
using core::SagaInput;
using core::SagaState;
using core::Step;
using core::StepReply;

// Decides `input` and folds the decided events, the way the orchestrator does.
// Returns the number of events recorded.
size_t Feed(const core::SagaDefinition& def, SagaState& state, const SagaInput& input, core::TimeMs now,
            std::vector<std::pair<core::OrderId, SagaEvent>>* log = nullptr) {
  Decision decision = Decide(def, state, input, now);
  for (SagaEvent& event : decision.events) {
    state = core::Apply(def, std::move(state), event);
    if (log != nullptr) log->emplace_back(state.order_id, std::move(event));
  }
  return decision.events.size();
}

StepReply ReplyTo(const SagaState& state, bool ok, std::string detail) {
  return StepReply{.step = state.pending ? state.pending->step : Step::kUnknown,
                   .attempt = state.pending ? state.pending->attempt : 1,
                   .ok = ok,
                   .detail = std::move(detail)};
}

// One whole saga per iteration: order placed, reserve OK, charge OK, notify OK
// (4 inputs, 8 events, 3 commands, 1 final status).
void BM_SagaHappyPath(benchmark::State& state) {
  const core::SagaDefinition def = core::OrderSagaDefinition();
  const core::Order order = SampleOrder(42);
  size_t events = 0;
  for (auto _ : state) {
    SagaState saga;
    core::TimeMs now = kBenchStartMs;
    events += Feed(def, saga, core::OrderPlaced{order}, now);
    events += Feed(def, saga, ReplyTo(saga, true, "reserved 2 item(s)"), now += 5);
    events += Feed(def, saga, ReplyTo(saga, true, "charged 10000 by card"), now += 5);
    events += Feed(def, saga, ReplyTo(saga, true, "email sent to user 2"), now += 5);
    if (saga.status != core::OrderStatus::kOk) {
      state.SkipWithError("the saga did not end OK");
      break;
    }
    benchmark::DoNotOptimize(saga);
  }
  state.SetItemsProcessed(state.iterations());  // sagas
  state.counters["events_per_saga"] =
      state.iterations() == 0 ? 0.0 : static_cast<double>(events) / static_cast<double>(state.iterations());
}
BENCHMARK(BM_SagaHappyPath);

// An event log of at least `n` events from many sagas (keyed by order id, as
// on orders.saga.events): most succeed, every 10th has its payment declined
// (compensated), every 7th has a failed notification.
std::vector<std::pair<core::OrderId, SagaEvent>> RecordLog(const core::SagaDefinition& def, size_t n) {
  std::vector<std::pair<core::OrderId, SagaEvent>> log;
  core::TimeMs now = kBenchStartMs;
  for (core::OrderId id = 1; log.size() < n; ++id) {
    SagaState saga;
    Feed(def, saga, core::OrderPlaced{SampleOrder(id)}, now += 1, &log);
    Feed(def, saga, ReplyTo(saga, true, "reserved 2 item(s)"), now += 1, &log);
    const bool declined = id % 10 == 0;
    Feed(def, saga, ReplyTo(saga, !declined, declined ? "card declined" : "charged 10000 by card"), now += 1,
         &log);
    const bool silent = id % 7 == 0;
    // Declined: the pending step is now the release; otherwise the notification.
    Feed(def, saga, ReplyTo(saga, !silent, silent ? "mailbox unavailable" : "done"), now += 1, &log);
  }
  log.resize(n);
  return log;
}

// Rebuilding saga states from N recorded events (orchestrator restart with
// an empty disk). Reported items are events.
void BM_SagaReplay(benchmark::State& state) {
  const core::SagaDefinition def = core::OrderSagaDefinition();
  const auto log = RecordLog(def, static_cast<size_t>(state.range(0)));
  for (auto _ : state) {
    std::unordered_map<core::OrderId, SagaState> sagas;
    for (const auto& [id, event] : log) {
      SagaState& saga = sagas[id];
      saga = core::Apply(def, std::move(saga), event);
    }
    benchmark::DoNotOptimize(sagas);
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_SagaReplay)->Arg(1'000)->Arg(10'000)->Arg(100'000)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace sagaflow::bench
