#pragma once
/// `sagaflow scenario run FILE...`: parses every file first (any error: exit 2,
/// nothing runs), prepares the backend once, then runs each scenario: starts
/// its system, runs its steps in order (a step with `at` waits for its time),
/// printing each as it happens, waits for the load to end, runs the checks and
/// prints a table. Exit codes: 0 every check of every scenario passed; 1 a
/// check failed; 2 bad input or a system that could not be started or driven
/// (a step failed). SIGINT/SIGTERM stop the run; everything the backend
/// started is stopped in every case.
///
/// With `jobs` > 1 (local backend only) that many scenarios run at once, each
/// job with a backend of its own (LocalOptionsForJob: its own broker, ports and
/// var directory); every output line then carries its scenario's name, and
/// the results are reported in file order.
///
/// Thread safety: one run per process (it installs signal handlers).

#include <iosfwd>
#include <string>
#include <vector>

#include "sagaflow/scenario/backend.hpp"
#include "sagaflow/scenario/checks.hpp"

namespace sagaflow::scenario {

inline constexpr int kExitPassed = 0;
inline constexpr int kExitCheckFailed = 1;
inline constexpr int kExitBadInput = 2;

struct RunOptions {
  std::vector<std::string> files;
  /// "local" or "compose".
  std::string backend = "local";
  LocalOptions local;
  ComposeOptions compose;
  /// Print the results as JSON (one array) on `out`; the progress goes to `err`.
  bool json = false;
  /// Keep each scenario's data and logs even when it passed.
  bool keep = false;
  /// Scenarios run at once (local backend only; 1..kMaxJobs).
  int jobs = 1;
};

inline constexpr int kMaxJobs = 4;

/// What happened in one scenario.
struct ScenarioResult {
  std::string name;
  std::string file;
  std::string backend;
  /// Non-empty when the scenario could not be run to its checks (setup or a step failed).
  std::string error;
  int64_t orders_sent = 0;       // POSTs the load started
  int64_t orders_accepted = 0;   // acknowledged with an order id
  int64_t orders_ok = 0;         // by the order changelog
  int64_t orders_not_ok = 0;
  int64_t orders_not_terminal = 0;
  std::map<std::string, int> faults;  // "kill orchestrator" -> 1, "inject" -> 9
  std::vector<CheckResult> checks;
  double seconds = 0;
  bool passed() const;
};

/// Runs the scenarios; see the file comment.
int RunScenarios(const RunOptions& options, std::ostream& out, std::ostream& err);

/// The table printed after a scenario.
std::string FormatResult(const ScenarioResult& result);
/// The results as one JSON array.
std::string ResultsToJson(const std::vector<ScenarioResult>& results);

}  // namespace sagaflow::scenario
