#pragma once
/// The invariants a run of the saga system must keep, as pure functions over
/// what was observed after the run: the order, payment and notification
/// changelogs, the warehouse's stock before and after, the dead letters, and
/// what the run itself did (the orders it saw accepted, the records it
/// injected). Each returns a CheckResult with the numbers behind the verdict
/// and the first few problems. Used by `sagaflow scenario run` and the crash test.
///
/// Every changelog record is a full state, so two payment records for one
/// order mean the charge ran twice; the checks therefore need every record,
/// not the compacted latest value.
///
/// Pure; thread safety: no shared state.

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "sagaflow/core/types.hpp"

namespace sagaflow::scenario {

/// Units of one item: available and reserved.
struct ItemStock {
  int64_t available = 0;
  int64_t reserved = 0;
  bool operator==(const ItemStock&) const = default;
};

/// What the checks look at.
struct Observation {
  /// Every record of the order changelog, in order (several per order: accepted, then final).
  std::vector<core::OrderRecord> order_records;
  /// Every record of the payment and notification changelogs.
  std::vector<core::Payment> payments;
  std::vector<core::Notification> notifications;
  /// Every dead letter of the run, and the (source topic, original bytes) of the records injected on purpose.
  std::vector<core::DeadLetter> dead_letters;
  std::vector<std::pair<std::string, std::string>> injected;
  /// Order ids the clients were given by POST /neworder (an acknowledged order must not be lost).
  std::set<core::OrderId> acknowledged;
  /// Orders the clients gave up placing (POST /neworder refused or unanswered until their timeout).
  int64_t never_acknowledged = 0;
  /// The warehouse's stock before and after; an item missing from `before` had `default_stock` available.
  std::map<core::ItemId, ItemStock> stock_before;
  std::map<core::ItemId, ItemStock> stock_after;
  int64_t default_stock = 0;
  /// Records that could not be read (a broken changelog fails the checks that need it).
  std::vector<std::string> unreadable;
};

struct CheckResult {
  std::string name;
  bool passed = false;
  /// The numbers behind the verdict, one line ("300 orders: 281 OK, 19 NOT OK, 0 not terminal").
  std::string numbers;
  /// The first problems found (at most kMaxProblems), empty when passed.
  std::vector<std::string> problems;
  static constexpr size_t kMaxProblems = 10;
};

/// The latest state of each order: order id -> its last changelog record.
std::map<core::OrderId, core::OrderRecord> LatestOrders(const std::vector<core::OrderRecord>& records);

/// Every order recorded, and every acknowledged one, is OK or NOT OK; every order placed was acknowledged.
CheckResult CheckAllTerminal(const Observation& o);
/// Per item: available + reserved is what it was, and reserved grew by the quantity of the OK orders.
CheckResult CheckStockConserved(const Observation& o);
/// Every OK order has exactly one successful charge, of its sum; a NOT OK order none.
CheckResult CheckOneChargePerOk(const Observation& o);
/// One order per Idempotency-Key, at most one payment and one notification record per order, none
/// for an order nobody placed, no notification for a NOT OK order.
CheckResult CheckNoDuplicates(const Observation& o);
/// The dead letters are exactly the injected records, once each.
CheckResult CheckDlqExact(const Observation& o);

}  // namespace sagaflow::scenario
