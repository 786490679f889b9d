#pragma once
/// `replay --verify --participants`: the saga history cross-checked with the
/// participants' own records, read from their compacted changelogs
/// (orders.warehouse.reservations, orders.payment.payments,
/// orders.notification.sent) and with the orders (orders.order.orders), keyed
/// by order id (reservations: by order id and item, "<order>/<item>", one per
/// leg of the reserve step); the latest record of a key wins, an empty value deletes.
///
/// Checks, for every saga that ended (running sagas are skipped):
///  - OK: every item of the order has its reservation kept (Reserved; or the
///    order's whole-order reservation, from an earlier version); exactly one successful charge of
///    the order's sum; a notification that succeeded if the saga saw it succeed;
///  - NOT OK: no reservation of the order is kept (Released, Rejected or none) and no
///    successful charge;
///  - the order's final status equals the saga's.
/// With the whole history read, a successful charge or a kept reservation of
/// an order that has no saga is reported too.
/// Thread safety: plain functions; the result types are values.

#include <map>
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
  /// Per order, per item (core::kNoLeg: a whole-order reservation of an earlier version).
  std::unordered_map<core::OrderId, std::map<core::LegKey, core::Reservation>> reservations;
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
