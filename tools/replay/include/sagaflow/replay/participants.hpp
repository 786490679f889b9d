#pragma once
/// `replay --verify --participants`: the saga history cross-checked with the
/// participants' own records, read from their compacted changelogs
/// (orders.warehouse.reservations, orders.payment.payments,
/// orders.notification.sent) and with the orders (orders.order.orders), all
/// keyed by order id; the latest record of a key wins, an empty value deletes.
///
/// Checks, for every saga that ended (running sagas are skipped):
///  - OK: the reservation is kept (Reserved); exactly one successful charge of
///    the order's sum; a notification that succeeded if the saga saw it succeed;
///  - NOT OK: the reservation is not kept (Released, Rejected or none) and no
///    successful charge;
///  - the order's final status equals the saga's.
/// With the whole history read, a successful charge or a kept reservation of
/// an order that has no saga is reported too.
/// Thread safety: plain functions; the result types are values.

#include <string>
#include <unordered_map>
#include <vector>

#include "sagaflow/core/result.hpp"
#include "sagaflow/core/types.hpp"
#include "sagaflow/replay/replay_command.hpp"
#include "sagaflow/replay/replayer.hpp"

namespace sagaflow::replay {

/// The latest record per order id of each participant changelog.
struct ParticipantRecords {
  std::unordered_map<core::OrderId, core::Reservation> reservations;
  std::unordered_map<core::OrderId, core::Payment> payments;
  std::unordered_map<core::OrderId, core::Notification> notifications;
  std::unordered_map<core::OrderId, core::OrderRecord> orders;
  /// Records that did not decode as what their topic holds (skipped).
  int64_t undecodable = 0;
};

/// One disagreement between the history and a participant, both sides described.
struct Mismatch {
  core::OrderId saga_id = 0;
  std::string check;
  std::string history;
  std::string participant;
};

/// Reads the four changelogs from `source.brokers` (with `source.topic_prefix`).
core::Result<ParticipantRecords> ReadParticipants(const SourceOptions& source);

/// See the file comment. `whole_history`: the replay read the log from its start.
std::vector<Mismatch> CheckParticipants(const Replayer& replayer, const ParticipantRecords& records,
                                        bool whole_history);

}  // namespace sagaflow::replay
