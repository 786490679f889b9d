#pragma once
/// The warehouse participant: reserves stock for an order (compensatable step)
/// and releases the reservation when the saga compensates. Both come as legs,
/// one command per item, keyed by the item (the saga definition fans the step
/// out per item), so an item's state lives in the item's partition and one
/// task, on whichever instance, owns it. Restocks come as Restock records keyed
/// by item on orders.service.warehouse.restock, applied by the item's owner.
///
/// State (RocksDB, a fold of two compacted changelogs):
///   stock/<item_id>                  StockLevel  (orders.warehouse.stock)
///   reservation/<order_id>/<item_id> Reservation (orders.warehouse.reservations,
///                                    produced to the item's partition)
/// An item never seen before starts with `default_stock` available. For every
/// item, available + reserved = default_stock + restocked, always.
///
/// StockLevel also holds the Idempotency-Keys of POST /stock applied to the
/// item (bounded; see restock_keys.hpp).
///
/// REST: GET /stock (every item), POST /stock (restock: 202 once recorded;
/// with an Idempotency-Key, applied once per key: 200 once applied),
/// GET /reservations/{order_id} (per item), plus the participant routes (/set).

#include <memory>

#include "sagaflow/runtime/participant.hpp"

namespace sagaflow::warehouse {

struct WarehouseOptions {
  runtime::ParticipantOptions participant;
  int64_t default_stock = 1'000'000;
};

std::unique_ptr<runtime::Participant> MakeWarehouse(runtime::ServiceOptions options, WarehouseOptions warehouse);

}  // namespace sagaflow::warehouse
