#pragma once
/// POST /stock with an Idempotency-Key: the decisions, pure (no Kafka, no
/// store), shared by the REST edge and the item's owner.
///
/// A keyed request restocks each item it names once, whichever instance gets
/// it and however often it is retried. Every Restock record of the request
/// carries the key and the hash of the request (its items and quantities); the
/// item's owner records the key in the item's StockLevel (the stock changelog,
/// so it is restored with the stock after a rebalance or a wipe) in the same
/// write that adds the quantity, and skips a record whose key it holds. The
/// REST edge reads the keys of every item from the stock view: a key held with
/// another hash is a reuse for a different request (422); items that hold the
/// key with this hash are done and are not sent again.
///
/// Retention: an item keeps the keys applied within kRestockKeyRetention, at
/// most kMaxRestockKeysPerItem of them (the newest). A retry after that is a
/// new request.

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "sagaflow/core/types.hpp"

namespace sagaflow::warehouse {

constexpr std::chrono::hours kRestockKeyRetention{24};
constexpr size_t kMaxRestockKeysPerItem = 100;

/// The request's restocks with one entry per item (quantities of a repeated
/// item added up), in order of item id: what a keyed request sends.
std::vector<core::Restock> MergeRestocks(const std::vector<core::Restock>& restocks);

/// A hash of the request (FNV-1a, 64 bits) over its merged items and
/// quantities: the same on every instance and build, whatever the order of
/// the items in the body.
uint64_t RestockRequestHash(const std::vector<core::Restock>& merged);

/// How an owner treats a restock record for `level`.
enum class KeyedRestock {
  kApply,      // no key, or a key the item has not seen: apply and record it
  kDuplicate,  // the key was applied with the same request hash: skip
  kConflict,   // the key was applied for a different request: dead-letter
};
KeyedRestock ClassifyRestock(const core::StockLevel& level, const core::Restock& restock);

/// Adds the restock's quantity to `level` and records its key (if any),
/// dropping keys older than kRestockKeyRetention before `now_ms` and the
/// oldest beyond kMaxRestockKeysPerItem.
void ApplyRestock(core::StockLevel& level, const core::Restock& restock, core::TimeMs now_ms);

/// What the REST edge does with a keyed request, given the hash recorded
/// under the key on each item that holds it (from the stock view).
struct KeyedRestockPlan {
  /// Non-empty: the key was used for a different request (answer 422 with it).
  std::string conflict;
  /// The restocks not applied yet (to send; the owner skips any duplicate).
  std::vector<core::Restock> to_send;
};
KeyedRestockPlan PlanKeyedRestock(const std::vector<core::Restock>& merged, std::string_view key, uint64_t hash,
                                  const std::map<core::ItemId, uint64_t>& applied_under_key);

}  // namespace sagaflow::warehouse
