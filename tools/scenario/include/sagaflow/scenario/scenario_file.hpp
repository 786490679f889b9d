#pragma once
/// A failure scenario as written in deployment/scenarios/*.yaml: the system to
/// start, the timed steps to run against it, and the checks that give the
/// verdict. ParseScenario turns YAML text into a Scenario and refuses anything
/// it does not understand (a syntax error, an unknown key or step, a value out
/// of range) with "FILE:LINE: problem", so a typo never silently weakens a
/// scenario. The file format is described in the README's Scenarios section.
///
/// Pure: no I/O except LoadScenarioFile. Thread safety: no shared state.

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "sagaflow/core/result.hpp"

namespace sagaflow::scenario {

/// The processes a scenario can act on: the five services and the broker.
inline const std::vector<std::string> kServices = {"order", "orchestrator", "warehouse", "payment",
                                                   "notification"};
inline constexpr const char* kBroker = "broker";
/// The participants, which take mistakes and delays.
inline const std::vector<std::string> kParticipants = {"warehouse", "payment", "notification"};

struct DelayMs {
  int64_t min = 0;
  int64_t max = 0;
  bool operator==(const DelayMs&) const = default;
};

/// What to start before the first step.
struct SystemSpec {
  /// Kafka brokers: 1, or 3 for a three-node KRaft cluster (replication
  /// factor 3, min.insync.replicas 2; deployment/kafka/cluster).
  int brokers = 1;
  /// Instances per service (default 1 each).
  std::map<std::string, int> instances;
  /// The instances of `service` (1 unless `instances` says otherwise).
  int InstancesOf(const std::string& service) const {
    const auto it = instances.find(service);
    return it == instances.end() ? 1 : it->second;
  }
  /// Partitions of every saga topic.
  int partitions = 3;
  /// Percentage of requests each participant fails at start.
  std::map<std::string, int> mistakes;
  /// Simulated work per request of each participant at start.
  std::map<std::string, DelayMs> delays;
  /// Units of every item the warehouse starts with.
  int64_t default_stock = 1'000'000;
  /// The orchestrator's timings.
  std::chrono::milliseconds step_timeout{10'000};
  std::chrono::milliseconds max_step_timeout{60'000};
  int max_attempts = 3;
};

enum class StepKind {
  kLoad,     // start placing orders (in the background)
  kSet,      // POST /set on a participant: mistakes and/or delay
  kKill,     // SIGKILL a service or the broker; it stays down until restart
  kPause,    // SIGSTOP (docker pause)
  kResume,   // SIGCONT (docker unpause)
  kRestart,  // start it again if down, else stop and start it; waits until it is healthy
  kWipe,     // kill it, delete its data directory, start it again (it rebuilds from Kafka)
  kInject,   // produce malformed records on a topic (they must end in the DLQ)
  kWait,     // a duration, or until a condition holds
};
const char* ToString(StepKind kind);

enum class WaitCondition {
  kNone,         // wait for `duration`
  kLoadDone,     // every load step finished placing and following its orders
  kAllTerminal,  // every order accepted so far is OK or NOT OK
  kHealthy,      // `target` answers GET / with 200
};
const char* ToString(WaitCondition condition);

struct LoadSpec {
  /// Orders to place; 0 = until `duration`.
  int64_t orders = 0;
  std::chrono::milliseconds duration{0};
  /// Closed loop (orders in flight) unless `rate` (orders/s) > 0.
  int concurrency = 10;
  double rate = 0;
  /// Item ids [first_item, first_item + items): fewer means more stock contention.
  int64_t first_item = 1;
  int64_t items = 100;
  int max_quantity = 2;
  /// How long one order may take before the load gives up on it.
  std::chrono::milliseconds order_timeout{120'000};
  uint64_t seed = 1;
};

struct Step {
  StepKind kind = StepKind::kWait;
  /// 1-based line of the step in its file.
  int line = 0;
  /// When set, the step starts no earlier than this long after the first step.
  std::optional<std::chrono::milliseconds> at;
  /// kKill, kPause, kResume, kRestart, kWipe, kSet, kWait(kHealthy): a service or "broker".
  std::string target;
  /// Which one of `target`, written `target@N`: a service's instance (1..N;
  /// a bare service name is instance 1), a broker node (1..brokers; a bare
  /// "broker" is 0: the whole broker, every node of a cluster). kSet applies
  /// to every instance and leaves this 0.
  int instance = 0;
  LoadSpec load;
  /// kSet.
  std::optional<int> mistakes;
  std::optional<DelayMs> delay;
  /// kInject: the topic's name without the prefix (e.g. orders.service.order).
  std::string topic;
  int count = 1;
  /// kWait: the duration, or the condition and its timeout.
  WaitCondition condition = WaitCondition::kNone;
  std::chrono::milliseconds duration{0};
};

enum class CheckKind {
  kAllTerminal,     // every accepted order OK or NOT OK within `within`, none lost
  kStockConserved,  // per item: available + reserved unchanged, reserved grew by the OK orders' quantity
  kOneChargePerOk,  // one successful charge of its sum per OK order, none per NOT OK order
  kNoDuplicates,    // one order per Idempotency-Key, at most one payment and notification record per order
  kDlqExact,        // the dead-letter topic holds exactly the injected records, once each
  kReplayVerify,    // sagaflow replay --verify --participants passes
};
const char* ToString(CheckKind kind);

struct CheckSpec {
  CheckKind kind = CheckKind::kAllTerminal;
  int line = 0;
  /// kAllTerminal: how long to wait, after the last step, for every order to end.
  std::chrono::milliseconds within{60'000};
};

struct Scenario {
  std::string file;
  std::string name;
  std::string description;
  SystemSpec system;
  std::vector<Step> steps;
  std::vector<CheckSpec> checks;
};

/// Parses a scenario. `file` only names the text in error messages. Errors
/// (kInvalidArgument) read "FILE:LINE: what is wrong".
core::Result<Scenario> ParseScenario(const std::string& text, const std::string& file);

/// "payment", "payment@2", "broker@3": how a step names what it acts on.
std::string TargetName(const std::string& target, int instance);

/// Reads and parses a scenario file.
core::Result<Scenario> LoadScenarioFile(const std::string& path);

/// "90s", "1500ms", "2m", or a plain number of seconds (may have a fraction).
std::optional<std::chrono::milliseconds> ParseDurationText(const std::string& text);
/// 1500ms -> "1.5 s", 60000 -> "60 s", 250 -> "250 ms".
std::string FormatDuration(std::chrono::milliseconds d);

}  // namespace sagaflow::scenario
