#pragma once
/// `sagaflow replay` and `sagaflow replay export`: what the CLI calls. Each
/// Run* function reads the saga event log (Kafka or an export file), prints
/// its view on `out` and returns the process exit code:
///   0  done (and, with verify, history and code agree, invariants hold)
///   1  verify found a divergence, a broken invariant or a participant mismatch
///   2  bad input: unreachable broker, missing topic, corrupt or truncated
///      file, unknown saga, bad option value (one line on `err` names it)
/// Never throws. Thread safety: no shared state between calls.

#include <cstdint>
#include <iosfwd>
#include <map>
#include <optional>
#include <string>

#include "sagaflow/core/result.hpp"
#include "sagaflow/core/saga_definition.hpp"
#include "sagaflow/core/types.hpp"
#include "sagaflow/replay/replayer.hpp"

namespace sagaflow::replay {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFindings = 1;
inline constexpr int kExitBadInput = 2;

/// Where the saga event log comes from.
struct SourceOptions {
  /// Kafka bootstrap servers (when `file` is empty; always for --participants).
  std::string brokers = "127.0.0.1:9092";
  std::string topic_prefix;
  /// An export file to read instead of Kafka.
  std::string file;
  /// Only sagas that started at or after this time (ms since the epoch).
  std::optional<core::TimeMs> since_ms;
  /// Extra librdkafka properties.
  std::map<std::string, std::string> kafka_properties;
  /// Draw a progress bar on stderr (the CLI sets it when stderr is a terminal).
  bool progress = false;
  /// How long to wait for the broker before giving up.
  int64_t broker_timeout_ms = 5'000;
};

struct ReplayOptions {
  SourceOptions source;
  /// The timeline of one saga instead of the summary.
  std::optional<core::OrderId> saga;
  /// Only sagas in this state: running, compensating, ended, ok, not_ok.
  std::string state;
  /// Only sagas in flight for longer than this many ms.
  std::optional<int64_t> stuck_ms;
  /// JSON lines instead of tables.
  bool json = false;
  /// Check the history against today's Decide and the invariants.
  bool verify = false;
  /// With verify: also cross-check the participants' changelogs and the orders.
  bool participants = false;
  /// The definition's timings, as the orchestrator was run (verify compares deadlines).
  core::OrderSagaTimings timings;
  /// "Now", for ages; 0 = the wall clock.
  core::TimeMs now_ms = 0;
};

int RunReplay(const ReplayOptions& options, std::ostream& out, std::ostream& err);

/// Copies the saga event log from Kafka into an export file.
int RunExport(const SourceOptions& source, const std::string& out_path, std::ostream& out, std::ostream& err);

/// Reads the saga event log from `source` into `replayer` (then calls Finish).
/// Sagas that started before `source.since_ms` are marked partial.
core::Status ReadSagaLog(const SourceOptions& source, Replayer& replayer);

/// "90s", "5m", "2h", "1d", "250ms" or a number of seconds -> milliseconds.
core::Result<int64_t> ParseDuration(const std::string& text);
/// "2026-11-27T06:00:00Z" (or with a fraction or +hh:mm), ms since the epoch, or a
/// duration ago ("1h") -> ms since the epoch.
core::Result<core::TimeMs> ParseTime(const std::string& text, core::TimeMs now_ms);

}  // namespace sagaflow::replay
