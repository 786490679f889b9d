#pragma once
/// An order's end, learned from the orchestrator's status topic before the
/// order service's own transaction records it in the order.
///
/// The order service records every final status in the order (its changelog,
/// orders.order.orders) and answers long polls, event streams and reads from
/// a view of that changelog. That takes one more transaction after the
/// orchestrator's: a whole hop. The status record itself is committed (the
/// orchestrator's transaction) and is what the order will say once recorded,
/// so the service also reads the status topic directly and tells its clients
/// at once. This class holds those early statuses until the view applies the
/// recorded order, and decides who announces an order's end, so that each end
/// is announced exactly once whichever of the two readers gets there first:
///
/// - OnStatus (status reader): announces when the view holds the order and it
///   is not final yet; remembers it as announced early.
/// - OnViewed (view reader, after the view stored the record): announces a
///   final order unless it was announced early; forgets it.
/// - Overlay: reads see an early status as if the order had recorded it, so a
///   client that was told the end never reads an earlier state afterwards.
///
/// Bounded: at most `capacity` orders wait for their record (ends beyond that
/// take the slow path). Thread-safe.

#include <cstddef>
#include <functional>
#include <mutex>
#include <optional>
#include <unordered_map>

#include "sagaflow/core/types.hpp"

namespace sagaflow::order {

using core::IsFinal;

/// Records final status `status`, produced at `produced_at_ms`, in `order`.
/// A finish is never before the acceptance (another machine's clock may have
/// accepted the order).
void RecordFinal(core::OrderRecord& order, const core::FinalStatus& status, core::TimeMs produced_at_ms);

/// See the file comment.
class EarlyFinals {
 public:
  explicit EarlyFinals(size_t capacity) : capacity_(capacity) {}

  /// A final status of order `id` read from the status topic. `viewed` reads
  /// the order as the view holds it now; it is called under this object's
  /// lock, which OnViewed also takes, so the view's record and this decision
  /// cannot cross. Returns the finished order to announce, or nullopt when the
  /// view does not hold the order yet, holds it final already, the order's end
  /// was seen before, or `capacity` orders wait already.
  std::optional<core::OrderRecord> OnStatus(core::OrderId id, const core::FinalStatus& status,
                                            core::TimeMs produced_at_ms,
                                            const std::function<std::optional<core::OrderRecord>()>& viewed);

  /// The view stored `record`: true when its end is to be announced now (it
  /// is final and OnStatus did not announce it).
  bool OnViewed(const core::OrderRecord& record);

  /// `record`, with the early final status of its order if there is one.
  core::OrderRecord Overlay(core::OrderRecord record) const;

  /// Orders announced early whose record the view has not applied yet.
  size_t size() const;

 private:
  const size_t capacity_;
  mutable std::mutex mu_;
  std::unordered_map<core::OrderId, core::OrderRecord> ahead_;
};

}  // namespace sagaflow::order
