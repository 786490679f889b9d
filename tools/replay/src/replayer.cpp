#include "sagaflow/replay/replayer.hpp"

#include <algorithm>
#include <bitset>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <variant>

#include "format.hpp"
#include "sagaflow/core/codec.hpp"
#include "sagaflow/core/saga_aggregate.hpp"

namespace sagaflow::replay {
namespace {

using core::SagaEvent;
using core::Step;
using core::StepOutcome;
using detail::FormatDuration;
using detail::StepName;

using StepSet = std::bitset<128>;
size_t Bit(Step step) { return static_cast<size_t>(static_cast<uint8_t>(step)) & 127u; }

std::string JoinSteps(const std::vector<Step>& steps) {
  std::string out;
  for (Step step : steps) {
    if (!out.empty()) out += ", ";
    out += StepName(step);
  }
  return out;
}

std::string OutcomeSuffix(StepOutcome outcome, const std::vector<Step>& compensations, bool timeout) {
  switch (outcome) {
    case StepOutcome::kRetry: return " -> retry";
    case StepOutcome::kLegAnswered: return " -> other legs awaited";
    case StepOutcome::kNoted: return timeout ? " -> last attempt; noted, saga carries on" : " -> noted, saga carries on";
    case StepOutcome::kCompensate:
      return std::string(timeout ? " -> last attempt; " : " -> ") +
             (compensations.empty() ? "compensate: nothing to undo" : "compensate: " + JoinSteps(compensations));
    default: return "";
  }
}

// Whether the saga's input that led to `event` was an input at all (the
// events a decision starts with), rather than a follow-up of one.
bool IsInputEvent(const SagaEvent& event) {
  return std::holds_alternative<core::SagaStarted>(event.body) ||
         std::holds_alternative<core::StepReplied>(event.body) ||
         std::holds_alternative<core::StepTimedOut>(event.body);
}

core::SagaInput InputOf(const SagaEvent& event) {
  if (const auto* started = std::get_if<core::SagaStarted>(&event.body)) return core::OrderPlaced{started->order};
  if (const auto* replied = std::get_if<core::StepReplied>(&event.body)) {
    return core::StepReply{replied->step, replied->attempt, replied->ok, replied->detail, replied->leg};
  }
  return core::Tick{event.at_ms};
}

// Events recorded before outcomes were carry none: compare the rest.
void ForgetOutcomeIfUnrecorded(SagaEvent& expected, const SagaEvent& recorded) {
  if (const auto* r = std::get_if<core::StepReplied>(&recorded.body); r && r->outcome == StepOutcome::kUnrecorded) {
    if (auto* e = std::get_if<core::StepReplied>(&expected.body)) {
      e->outcome = StepOutcome::kUnrecorded;
      e->compensations.clear();
    }
  }
  if (const auto* r = std::get_if<core::StepTimedOut>(&recorded.body); r && r->outcome == StepOutcome::kUnrecorded) {
    if (auto* e = std::get_if<core::StepTimedOut>(&expected.body)) {
      e->outcome = StepOutcome::kUnrecorded;
      e->compensations.clear();
    }
  }
}

}  // namespace

std::string Describe(const SagaEvent& event) {
  return std::visit(
      [&](const auto& b) -> std::string {
        using T = std::decay_t<decltype(b)>;
        if constexpr (std::is_same_v<T, core::SagaStarted>) {
          return "started: order " + std::to_string(b.order.order_id) + " of user " + std::to_string(b.order.user_id) +
                 ", " + std::to_string(b.order.items.size()) + " item line(s), sum " + std::to_string(b.order.sum);
        } else if constexpr (std::is_same_v<T, core::StepRequested>) {
          std::string legs;
          for (auto leg : b.legs) legs += (legs.empty() ? ", legs " : " ") + std::to_string(leg);
          return StepName(b.step) + " requested, attempt " + std::to_string(b.attempt) + legs + ", deadline +" +
                 FormatDuration(b.deadline_ms - event.at_ms);
        } else if constexpr (std::is_same_v<T, core::StepReplied>) {
          return StepName(b.step) + (b.leg == core::kNoLeg ? "" : " leg " + std::to_string(b.leg)) + " replied " +
                 (b.ok ? "OK" : "NOT OK") + (b.detail.empty() ? "" : ": " + b.detail) +
                 " (attempt " + std::to_string(b.attempt) + ")" + OutcomeSuffix(b.outcome, b.compensations, false);
        } else if constexpr (std::is_same_v<T, core::StepTimedOut>) {
          return StepName(b.step) + " timed out, attempt " + std::to_string(b.attempt) +
                 OutcomeSuffix(b.outcome, b.compensations, true);
        } else {
          return "ended " + std::string(core::ToString(b.status)) + (b.detail.empty() ? "" : ": " + b.detail);
        }
      },
      event.body);
}

struct Replayer::Impl {
  struct Entry {
    SagaReplay replay;
    // verify: the events Decide produced for the last input, still to be matched.
    std::vector<SagaEvent> expected;
    size_t expected_next = 0;
    bool verifying = true;
    // invariants
    StepSet took_effect;       // compensatable forward steps that succeeded
    StepSet effect_unknown;    // ... whose last attempt timed out
    StepSet compensated;       // forward steps whose compensation was acknowledged
    bool compensation_began = false;
    int ended = 0;
    bool after_end_reported = false;
    core::TimeMs requested_at_ms = 0;
  };

  Impl(core::SagaDefinition d, ReplayerOptions o) : def(std::move(d)), options(o) {}

  void Diverge(Entry& e, core::TimeMs at_ms, std::string recorded, std::string expected) {
    e.verifying = false;
    e.replay.divergence = Divergence{e.replay.events, at_ms, std::move(recorded), std::move(expected)};
  }

  // Called with the state before `event` is applied.
  void Verify(Entry& e, const SagaEvent& event) {
    if (!e.verifying) return;
    if (IsInputEvent(event)) {
      if (e.expected_next < e.expected.size()) {
        Diverge(e, event.at_ms, Describe(event), Describe(e.expected[e.expected_next]));
        return;
      }
      e.expected = core::Decide(def, e.replay.state, InputOf(event), event.at_ms).events;
      e.expected_next = 0;
      if (e.expected.empty()) {
        Diverge(e, event.at_ms, Describe(event), "(nothing: today's code ignores this input)");
        return;
      }
    } else if (e.expected_next >= e.expected.size()) {
      Diverge(e, event.at_ms, Describe(event), "(nothing)");
      return;
    }
    SagaEvent want = e.expected[e.expected_next++];
    ForgetOutcomeIfUnrecorded(want, event);
    if (!(want == event)) {
      std::string recorded = Describe(event);
      std::string expected = Describe(want);
      if (recorded == expected) {
        // Same text, different bytes (a time or an outcome): show the times too.
        recorded += " @" + detail::FormatTime(event.at_ms);
        expected += " @" + detail::FormatTime(want.at_ms);
      }
      Diverge(e, event.at_ms, std::move(recorded), std::move(expected));
    }
  }

  void Violate(Entry& e, std::string what) { e.replay.violations.push_back(std::move(what)); }

  // Called with the state before `event` is applied.
  void Track(Entry& e, const SagaEvent& event) {
    SagaReplay& r = e.replay;
    if (e.ended > 0 && !e.after_end_reported && !std::holds_alternative<core::SagaEnded>(event.body)) {
      e.after_end_reported = true;
      Violate(e, "event after the saga ended: " + Describe(event));
    }
    std::visit(
        [&](const auto& b) {
          using T = std::decay_t<decltype(b)>;
          if constexpr (std::is_same_v<T, core::StepRequested>) {
            e.requested_at_ms = event.at_ms;
            if (b.attempt > 1) ++r.retries;
            if (def.Find(b.step) != nullptr) {
              if (e.compensation_began) {
                Violate(e, StepName(b.step) + " requested after compensation began");
              }
            } else {
              e.compensation_began = true;
              if (b.attempt <= 1) ++r.compensations;
            }
          } else if constexpr (std::is_same_v<T, core::StepReplied>) {
            if (r.state.pending && r.state.pending->step == b.step) {
              latencies[b.step].push_back(event.at_ms - e.requested_at_ms);
            }
            if (const auto* forward = def.Find(b.step)) {
              if (forward->compensation) {
                if (b.ok) e.took_effect.set(Bit(b.step));
                e.effect_unknown.reset(Bit(b.step));
              }
            } else if (const auto* undone = def.CompensatedBy(b.step);
                       undone && b.outcome != StepOutcome::kLegAnswered) {
              // Acknowledged when its last leg (or its only command) answered.
              e.compensated.set(Bit(undone->step));
            }
          } else if constexpr (std::is_same_v<T, core::StepTimedOut>) {
            ++r.timeouts;
            if (const auto* forward = def.Find(b.step); forward && forward->compensation) {
              e.effect_unknown.set(Bit(b.step));
            }
          } else if constexpr (std::is_same_v<T, core::SagaEnded>) {
            if (++e.ended > 1) Violate(e, "more than one terminal event: " + Describe(event));
            if (b.status == core::OrderStatus::kOk && e.compensation_began) {
              Violate(e, "ended OK after compensation began");
            }
            if (b.status != core::OrderStatus::kOk) {
              for (const auto& step : def.steps) {
                if (!step.compensation) continue;
                const size_t bit = Bit(step.step);
                if ((e.took_effect.test(bit) || e.effect_unknown.test(bit)) && !e.compensated.test(bit)) {
                  Violate(e, StepName(step.step) + (e.took_effect.test(bit) ? " succeeded" : " may have taken effect") +
                                 " but " + StepName(*step.compensation) + " was never acknowledged");
                }
              }
            }
          }
        },
        event.body);
  }

  void Add(core::OrderId id, const SagaEvent& event, int32_t partition, int64_t offset) {
    ++totals.events;
    Entry& e = sagas[id];
    SagaReplay& r = e.replay;
    if (r.events == 0) {
      r.id = id;
      r.first_event_ms = event.at_ms;
      if (!std::holds_alternative<core::SagaStarted>(event.body)) {
        r.partial = true;
        e.verifying = false;
      }
    }
    if (options.verify) Verify(e, event);
    Track(e, event);
    const bool compensating_before = r.state.phase == core::SagaPhase::kCompensating;
    r.state = core::Apply(def, std::move(r.state), event);
    ++r.events;
    r.last_event_ms = event.at_ms;
    if (options.timeline_of && *options.timeline_of == id) {
      const bool compensation = compensating_before && !std::holds_alternative<core::SagaEnded>(event.body);
      timeline.push_back(TimelineEntry{partition, offset, event, compensation});
    }
  }

  core::SagaDefinition def;
  ReplayerOptions options;
  ReplayTotals totals;
  std::unordered_map<core::OrderId, Entry> sagas;
  std::vector<TimelineEntry> timeline;
  std::map<Step, std::vector<int64_t>> latencies;
};

Replayer::Replayer(core::SagaDefinition def, ReplayerOptions options)
    : impl_(std::make_unique<Impl>(std::move(def), options)) {}
Replayer::~Replayer() = default;

void Replayer::Add(const SourceRecord& record) {
  ++impl_->totals.records;
  auto message = core::Decode(record.value);
  const auto events = message.ok() ? core::SagaEventsOf(message->payload) : std::span<const core::SagaEvent>();
  if (events.empty()) {
    if (impl_->totals.undecodable++ == 0) {
      impl_->totals.first_undecodable =
          "partition " + std::to_string(record.partition) + " offset " + std::to_string(record.offset) + ": " +
          (message.ok() ? "a " + std::string(core::PayloadName(message->payload)) + ", not saga events"
                        : message.error().message);
    }
    return;
  }
  for (const auto& event : events) impl_->Add(message->saga_id, event, record.partition, record.offset);
}

void Replayer::AddEvent(core::OrderId id, const core::SagaEvent& event, int32_t partition, int64_t offset) {
  impl_->Add(id, event, partition, offset);
}

void Replayer::Finish() {
  for (auto& [id, e] : impl_->sagas) {
    if (e.verifying && e.expected_next < e.expected.size()) {
      impl_->Diverge(e, e.replay.last_event_ms, "(history ends here)", Describe(e.expected[e.expected_next]));
    }
  }
}

const ReplayTotals& Replayer::totals() const { return impl_->totals; }

std::vector<const SagaReplay*> Replayer::Sagas() const {
  std::vector<std::pair<core::OrderId, const SagaReplay*>> sorted;
  sorted.reserve(impl_->sagas.size());
  for (const auto& [id, e] : impl_->sagas) sorted.emplace_back(id, &e.replay);
  std::sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<const SagaReplay*> out;
  out.reserve(sorted.size());
  for (const auto& [id, r] : sorted) out.push_back(r);
  return out;
}

const SagaReplay* Replayer::Find(core::OrderId id) const {
  auto it = impl_->sagas.find(id);
  return it == impl_->sagas.end() ? nullptr : &it->second.replay;
}

const std::vector<TimelineEntry>& Replayer::Timeline() const { return impl_->timeline; }
const std::map<core::Step, std::vector<int64_t>>& Replayer::StepLatencies() const { return impl_->latencies; }
const core::SagaDefinition& Replayer::definition() const { return impl_->def; }

}  // namespace sagaflow::replay
