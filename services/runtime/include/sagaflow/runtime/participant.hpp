#pragma once
/// The part every saga participant (warehouse, payment, notification) shares:
///  - it answers each StepCommand with exactly one StepReply, OK or NOT OK;
///  - a repeated command (same order id and step, any attempt) gets the reply
///    recorded the first time and changes nothing;
///  - failure injection: `mistakes` percent of new commands fail on purpose
///    (compensations never do: they must succeed);
///  - a simulated processing delay per command, drawn from [min, max] ms,
///    during which other commands go on being processed;
///  - POST /set {"mistakes": N, "delay_ms": [min, max]} and GET /set.
/// Subclasses say how to find a recorded reply and how to execute a command.

#include <atomic>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <string_view>

#include "sagaflow/runtime/service.hpp"

namespace sagaflow::runtime {

struct ParticipantOptions {
  int mistakes = 0;     // percent, 0..100
  int delay_min_ms = 0;
  int delay_max_ms = 0;
};

/// See the file comment: the settings and routes, shared by the tasks.
class Participant : public Service {
 public:
  Participant(std::string name, core::Service role, ServiceOptions options, ParticipantOptions participant);

  int mistakes() const { return mistakes_.load(); }
  void set_mistakes(int percent) { mistakes_.store(percent); }
  core::Service role() const { return role_; }
  /// A simulated processing delay drawn from the current [min, max] (0: none).
  int64_t DrawDelayMs(std::mt19937_64& rng) const;
  /// The steps this participant executes.
  virtual bool Handles(core::Step step) const = 0;
  /// Whether failure injection applies to `step` (not to compensations).
  virtual bool MayFail(core::Step step) const = 0;
  /// Whether `step` comes as legs of a fanned-out step (StepCommand::leg,
  /// keyed by the leg); a leg of any other step is refused.
  virtual bool TakesLegs(core::Step step) const { return false; }
  /// Why `command` makes no sense for this participant ("" when it does):
  /// checked before it touches state; a command that fails goes to the
  /// dead-letter topic with the reason.
  virtual std::string InvalidCommand(const core::StepCommand& command) const { return {}; }

 protected:
  /// Subclass routes besides /set.
  virtual void AddParticipantRoutes(HttpServer& http) = 0;
  void AddRoutes(HttpServer& http) final;

 private:
  core::Service role_;
  std::atomic<int> mistakes_;
  std::atomic<int> delay_min_ms_;
  std::atomic<int> delay_max_ms_;
};

/// Why a decoded record with key `key` is not a command `participant` may
/// execute, or "" when it is: every check a participant applies before the
/// record touches state, except partition ownership (the task's, it needs the
/// assignment). In order: a StepCommand, for a step the participant executes,
/// a positive saga id equal to the command's order id, a leg only for a step
/// the participant takes legs of, the record key core::CommandKey (the saga
/// id, or the leg's item id), then Participant::InvalidCommand. Pure; never throws on
/// any message Decode returns. A non-empty answer is the dead letter's reason.
std::string InvalidCommandRecord(const Participant& participant, std::string_view key, const core::Message& message);

/// One task of a participant: answers the commands of its partition.
/// Subclasses say how to find a recorded reply and how to execute a command.
class ParticipantTask : public ServiceTask {
 public:
  ParticipantTask(Participant& participant, int32_t task);

 protected:
  /// The reply already given to this (order, step), if any (read with Get()).
  virtual std::optional<core::StepReply> Recorded(const core::StepCommand& command) = 0;
  /// Executes a new command: stage its effects with EmitChangelog and return
  /// the reply. `fail_on_purpose` is the failure-injection verdict (always
  /// false for compensations).
  virtual core::StepReply Execute(core::TxContext& tx, const core::StepCommand& command, bool fail_on_purpose) = 0;

  /// From Execute: applying the command would break an invariant of the
  /// state. Nothing staged may have changed; the command is dead-lettered
  /// (quarantined) instead of answered, with a metric and an error log line.
  void Quarantine(std::string reason) { quarantine_ = std::move(reason); }

  // ProcessorHandler / ServiceTask
  void OnRecords(std::span<const kafka::Record> records, core::TxContext& tx) override;
  void OnIdle(core::TxContext& tx) override;
  void OnAbortedHook() override;
  std::chrono::milliseconds IdleInterval() const override;

  Participant& participant() { return participant_; }

 private:
  struct Pending {
    kafka::Record record;
    core::Message message;
    /// Set for a record to dead-letter once the records before it are answered.
    std::string dead_letter_reason;
  };
  void Process(core::TxContext& tx, const kafka::Record& record, const core::Message& message);

  Participant& participant_;
  std::string quarantine_;
  std::mt19937_64 rng_{std::random_device{}()};
  std::multimap<int64_t, Pending> waiting_;  // by the time it is due, ms since epoch
};

}  // namespace sagaflow::runtime
