#pragma once
/// `sagaflow dlq list|show|redrive`: reads the dead-letter topic (orders.dlq)
/// and re-drives chosen dead letters to the topic they came from.
///
/// A dead letter is named by where it is in orders.dlq: "PARTITION:OFFSET".
/// Re-driving is guarded twice:
///  - validation: the original bytes must decode (FlatBuffers verifier), be the
///    payload their source topic carries (OrderPlaced on orders.service.order,
///    a StepCommand on a command topic, a StepReply on a reply topic, a
///    FinalStatus on orders.service.status), with a key equal to the saga id;
///    anything else is refused with the reason;
///  - never twice: each re-driven dead letter gets a marker in the compacted
///    topic orders.dlq.redriven (key "PARTITION:OFFSET"), produced in the same
///    Kafka transaction as the re-driven record. The transactional id is the
///    same for every run, so a concurrent run is fenced before it can commit,
///    and the markers are read after the transactions are initialised.
/// Exit codes as in replay_command.hpp (1: something was refused).
/// Thread safety: no shared state between calls.

#include <iosfwd>
#include <string>
#include <vector>

#include "sagaflow/core/result.hpp"
#include "sagaflow/core/topics.hpp"
#include "sagaflow/core/types.hpp"
#include "sagaflow/replay/replay_command.hpp"

namespace sagaflow::replay {

struct DlqOptions {
  SourceOptions source;
  /// Only dead letters whose reason contains this text.
  std::string reason;
  /// Only dead letters from this source topic (with or without the prefix).
  std::string topic;
  bool json = false;
};

int RunDlqList(const DlqOptions& options, std::ostream& out, std::ostream& err);
/// Shows one dead letter; the original decoded where it can be, as hex where not.
int RunDlqShow(const DlqOptions& options, const std::string& id, std::ostream& out, std::ostream& err);
/// Re-drives the dead letters named in `ids`, or with `all` every one that
/// matches the filters.
int RunDlqRedrive(const DlqOptions& options, const std::vector<std::string>& ids, bool all, std::ostream& out,
                  std::ostream& err);

/// The name of the marker topic (compacted) for `topics`.
std::string RedrivenTopic(const core::TopicNames& topics);

/// Whether a dead letter may be re-driven to its source topic (see the file comment).
core::Status ValidateForRedrive(const core::TopicNames& topics, const core::DeadLetter& letter);

}  // namespace sagaflow::replay
