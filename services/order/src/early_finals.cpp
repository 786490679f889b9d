#include "sagaflow/order/early_finals.hpp"

#include <algorithm>

namespace sagaflow::order {
void RecordFinal(core::OrderRecord& order, const core::FinalStatus& status, core::TimeMs produced_at_ms) {
  order.status = status.status;
  order.detail = status.detail;
  order.steps = status.steps;
  order.finished_at_ms = std::max(produced_at_ms, order.accepted_at_ms);
}

std::optional<core::OrderRecord> EarlyFinals::OnStatus(
    core::OrderId id, const core::FinalStatus& status, core::TimeMs produced_at_ms,
    const std::function<std::optional<core::OrderRecord>()>& viewed) {
  if (!IsFinal(status.status)) return std::nullopt;
  std::lock_guard lock(mu_);
  if (ahead_.size() >= capacity_ || ahead_.count(id)) return std::nullopt;
  auto order = viewed();
  // Not viewed yet: OnViewed announces it once the recorded order arrives.
  // Final already: OnViewed announced it (or is about to).
  if (!order || IsFinal(order->status)) return std::nullopt;
  RecordFinal(*order, status, produced_at_ms);
  ahead_.emplace(id, *order);
  return order;
}

bool EarlyFinals::OnViewed(const core::OrderRecord& record) {
  if (!IsFinal(record.status)) return false;
  std::lock_guard lock(mu_);
  return ahead_.erase(record.order.order_id) == 0;
}

core::OrderRecord EarlyFinals::Overlay(core::OrderRecord record) const {
  if (IsFinal(record.status)) return record;
  std::lock_guard lock(mu_);
  auto it = ahead_.find(record.order.order_id);
  if (it == ahead_.end()) return record;
  const auto& early = it->second;
  record.status = early.status;
  record.detail = early.detail;
  record.steps = early.steps;
  record.finished_at_ms = early.finished_at_ms;
  return record;
}

size_t EarlyFinals::size() const {
  std::lock_guard lock(mu_);
  return ahead_.size();
}

}  // namespace sagaflow::order
