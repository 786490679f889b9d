#include "sagaflow/warehouse/restock_keys.hpp"

#include <algorithm>

namespace sagaflow::warehouse {
namespace {

const core::AppliedRestock* Find(const core::StockLevel& level, std::string_view key) {
  for (const auto& a : level.restocks) {
    if (a.key == key) return &a;
  }
  return nullptr;
}

}  // namespace

std::vector<core::Restock> MergeRestocks(const std::vector<core::Restock>& restocks) {
  std::map<core::ItemId, int64_t> by_item;
  for (const auto& r : restocks) by_item[r.item_id] += r.quantity;
  std::vector<core::Restock> out;
  out.reserve(by_item.size());
  for (const auto& [item, quantity] : by_item) out.push_back({item, quantity});
  return out;
}

uint64_t RestockRequestHash(const std::vector<core::Restock>& merged) {
  uint64_t h = 14695981039346656037ULL;
  auto mix = [&h](int64_t v) {
    auto u = static_cast<uint64_t>(v);
    for (int i = 0; i < 8; ++i) {
      h ^= (u >> (8 * i)) & 0xff;
      h *= 1099511628211ULL;
    }
  };
  for (const auto& r : merged) {
    mix(r.item_id);
    mix(r.quantity);
  }
  return h;
}

KeyedRestock ClassifyRestock(const core::StockLevel& level, const core::Restock& restock) {
  if (restock.idempotency_key.empty()) return KeyedRestock::kApply;
  const auto* applied = Find(level, restock.idempotency_key);
  if (applied == nullptr) return KeyedRestock::kApply;
  return applied->request_hash == restock.request_hash ? KeyedRestock::kDuplicate : KeyedRestock::kConflict;
}

void ApplyRestock(core::StockLevel& level, const core::Restock& restock, core::TimeMs now_ms) {
  level.available += restock.quantity;
  if (restock.idempotency_key.empty()) return;
  const core::TimeMs oldest =
      now_ms - std::chrono::duration_cast<std::chrono::milliseconds>(kRestockKeyRetention).count();
  std::erase_if(level.restocks, [&](const core::AppliedRestock& a) { return a.at_ms < oldest; });
  level.restocks.push_back({restock.idempotency_key, restock.request_hash, now_ms});
  if (level.restocks.size() > kMaxRestockKeysPerItem) {
    level.restocks.erase(level.restocks.begin(),
                         level.restocks.end() - static_cast<std::ptrdiff_t>(kMaxRestockKeysPerItem));
  }
}

KeyedRestockPlan PlanKeyedRestock(const std::vector<core::Restock>& merged, std::string_view key, uint64_t hash,
                                  const std::map<core::ItemId, uint64_t>& applied_under_key) {
  KeyedRestockPlan plan;
  for (const auto& [item, applied_hash] : applied_under_key) {
    if (applied_hash != hash) {
      plan.conflict = "Idempotency-Key '" + std::string(key) + "' was used for a different restock (item " +
                      std::to_string(item) + " was restocked under it); use a new key for a new restock";
      return plan;
    }
  }
  for (const auto& r : merged) {
    if (!applied_under_key.contains(r.item_id)) {
      plan.to_send.push_back({r.item_id, r.quantity, std::string(key), hash});
    }
  }
  return plan;
}

}  // namespace sagaflow::warehouse
