#pragma once
/// The warehouse participant: reserves stock for an order (compensatable step)
/// and releases the reservation when the saga compensates.
///
/// State (RocksDB, a fold of two compacted changelogs):
///   stock/<item_id>        StockLevel  (orders.warehouse.stock)
///   reservation/<order_id> Reservation (orders.warehouse.reservations)
/// An item never seen before starts with `default_stock` available. For every
/// item, available + reserved = default_stock + restocked, always.
///
/// REST: GET /stock, POST /stock (restock), GET /reservations/{order_id},
/// plus the participant routes (/set).

#include <memory>

#include "sagaflow/runtime/participant.hpp"

namespace sagaflow::warehouse {

struct WarehouseOptions {
  runtime::ParticipantOptions participant;
  int64_t default_stock = 1'000'000;
};

std::unique_ptr<runtime::Participant> MakeWarehouse(runtime::ServiceOptions options, WarehouseOptions warehouse);

}  // namespace sagaflow::warehouse
