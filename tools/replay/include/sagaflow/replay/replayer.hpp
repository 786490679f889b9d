#pragma once
/// Rebuilds sagas from their recorded events (orders.saga.events) with the
/// production aggregate (core::Apply), and optionally checks the history:
///  - verify: feeds each saga's recorded inputs (the order that started it,
///    each reply, each timeout) to today's core::Decide and compares what it
///    decides with the events that follow in the history; the first event where
///    they disagree is kept, both sides;
///  - invariants (always): a saga whose compensatable step took effect and did
///    not end OK had that step compensated; no forward step was requested
///    after compensation began; at most one terminal event, nothing after it.
///
/// Records (a decision's SagaEvents, or one SagaEvent as earlier versions
/// wrote) are added in log order per saga (Kafka keeps one saga in one
/// partition); sagas in different partitions may interleave. Memory is the
/// state of every saga plus, for one saga chosen up front, its events.
/// Thread safety: one thread at a time.

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sagaflow/core/saga_definition.hpp"
#include "sagaflow/core/types.hpp"

namespace sagaflow::replay {

/// One raw record of the saga event log, from Kafka or an export file. The
/// views are valid only during the call that receives it.
struct SourceRecord {
  int32_t partition = 0;
  int64_t offset = 0;
  int64_t timestamp_ms = 0;
  std::string_view key;
  std::string_view value;
};

/// One event of the saga kept for the timeline, with where it was read.
struct TimelineEntry {
  int32_t partition = 0;
  int64_t offset = 0;
  core::SagaEvent event;
  /// Whether the event belongs to a compensation (recorded while the saga was
  /// compensating: a compensation step's request, reply or timeout).
  bool compensation = false;
};

/// Where the history and today's Decide first disagree for one saga.
struct Divergence {
  /// 0-based position of the event in the saga's history.
  int64_t index = 0;
  core::TimeMs at_ms = 0;
  /// The recorded event, described; "(history ends here)" when the code expects more.
  std::string recorded;
  /// What today's code decides there; "(nothing)" when it decides nothing.
  std::string expected;
};

/// What replay learned about one saga.
struct SagaReplay {
  core::OrderId id = 0;
  core::SagaState state;
  int64_t events = 0;
  core::TimeMs first_event_ms = 0;
  core::TimeMs last_event_ms = 0;
  int32_t retries = 0;
  int32_t timeouts = 0;
  int32_t compensations = 0;
  /// The first event read was not SagaStarted (the read started mid-saga, --since).
  bool partial = false;
  std::optional<Divergence> divergence;
  /// Broken invariants, one sentence each.
  std::vector<std::string> violations;
};

/// Totals over the whole read.
struct ReplayTotals {
  int64_t records = 0;
  int64_t events = 0;
  /// Records that are not decodable saga events (counted, skipped).
  int64_t undecodable = 0;
  std::string first_undecodable;
};

struct ReplayerOptions {
  /// Re-run Decide on the recorded inputs (see the file comment).
  bool verify = false;
  /// Keep this saga's events for its timeline.
  std::optional<core::OrderId> timeline_of;
};

/// See the file comment.
class Replayer {
 public:
  /// `def` is the definition today's orchestrator runs (used by Decide for
  /// verify, and by Apply only for events recorded before outcomes were).
  Replayer(core::SagaDefinition def, ReplayerOptions options);
  ~Replayer();
  Replayer(const Replayer&) = delete;
  Replayer& operator=(const Replayer&) = delete;

  /// Decodes one record and folds it; undecodable records are counted.
  void Add(const SourceRecord& record);
  /// Folds one already decoded event of saga `id`.
  void AddEvent(core::OrderId id, const core::SagaEvent& event, int32_t partition = 0, int64_t offset = 0);
  /// Closes the read: decisions the history left unfinished become divergences.
  void Finish();

  const ReplayTotals& totals() const;
  /// Every saga, by id.
  std::vector<const SagaReplay*> Sagas() const;
  /// One saga, or nullptr.
  const SagaReplay* Find(core::OrderId id) const;
  /// The events of ReplayerOptions::timeline_of, in order.
  const std::vector<TimelineEntry>& Timeline() const;
  /// Per forward or compensation step: request-to-reply times of every reply, ms.
  const std::map<core::Step, std::vector<int64_t>>& StepLatencies() const;
  const core::SagaDefinition& definition() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// A one-line account of an event ("charge replied NOT OK: declined -> compensate: release_stock").
std::string Describe(const core::SagaEvent& event);

}  // namespace sagaflow::replay
