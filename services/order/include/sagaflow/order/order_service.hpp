#pragma once
/// The order service: the REST ingress of the shop. POST /neworder records the
/// order and hands it to the orchestrator (one Kafka transaction: the order's
/// changelog record + OrderPlaced on orders.service.order); the saga's final
/// status comes back on orders.service.status and is recorded too.
///
/// State (RocksDB, a fold of the compacted changelog orders.order.orders):
///   order/<order_id>  OrderRecord (order, status, detail, step history)
///   idem/<key>        order id accepted under an Idempotency-Key header
/// REST: POST /neworder, GET /orders/{id}[?wait=SECONDS] (long poll), GET /orders?status=&limit=,
/// GET /orders/events (server-sent events: one "final" event per order that ends).

#include <chrono>
#include <memory>

#include "sagaflow/runtime/service.hpp"

namespace sagaflow::order {

struct OrderOptions {
  /// How long POST /neworder waits for its transaction before answering 503.
  std::chrono::milliseconds accept_timeout{10'000};
};

std::unique_ptr<runtime::Service> MakeOrder(runtime::ServiceOptions options, OrderOptions order = {});

}  // namespace sagaflow::order
