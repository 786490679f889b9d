#include "sagaflow/core/topics.hpp"

#include "sagaflow/core/result.hpp"

namespace sagaflow::core {

TopicNames::TopicNames(std::string p)
    : prefix(std::move(p)),
      order(prefix + "orders.service.order"),
      status(prefix + "orders.service.status"),
      warehouse_reserve(prefix + "orders.service.warehouse.reserv"),
      warehouse_cancel(prefix + "orders.service.warehouse.cancel"),
      warehouse_status(prefix + "orders.service.warehouse.status"),
      warehouse_restock(prefix + "orders.service.warehouse.restock"),
      payment_pay(prefix + "orders.service.payment.pay"),
      payment_status(prefix + "orders.service.payment.status"),
      notification_send(prefix + "orders.service.notification.send"),
      notification_status(prefix + "orders.service.notification.status"),
      saga_events(prefix + "orders.saga.events"),
      saga_state(prefix + "orders.saga.state"),
      warehouse_stock(prefix + "orders.warehouse.stock"),
      warehouse_reservations(prefix + "orders.warehouse.reservations"),
      payment_payments(prefix + "orders.payment.payments"),
      notification_sent(prefix + "orders.notification.sent"),
      order_orders(prefix + "orders.order.orders"),
      dlq(prefix + "orders.dlq") {}

const std::string& TopicNames::CommandTopic(Step step) const {
  switch (step) {
    case Step::kReserveStock: return warehouse_reserve;
    case Step::kReleaseStock: return warehouse_cancel;
    case Step::kCharge: return payment_pay;
    case Step::kNotify: return notification_send;
    case Step::kUnknown: break;
  }
  SAGAFLOW_CHECK(false, "no command topic for step " + std::string(ToString(step)));
}

const std::string& TopicNames::ReplyTopic(Service service) const {
  switch (service) {
    case Service::kWarehouse: return warehouse_status;
    case Service::kPayment: return payment_status;
    case Service::kNotification: return notification_status;
    case Service::kNone: break;
  }
  SAGAFLOW_CHECK(false, "no reply topic for service " + std::string(ToString(service)));
}

std::vector<TopicSpec> TopicNames::All(int32_t partitions) const {
  std::vector<TopicSpec> out;
  for (const auto* name : {&order, &status, &warehouse_reserve, &warehouse_cancel, &warehouse_status,
                           &warehouse_restock, &payment_pay, &payment_status, &notification_send, &notification_status, &dlq}) {
    out.push_back({*name, partitions, false, false});
  }
  out.push_back({saga_events, partitions, false, true});
  for (const auto* name : {&saga_state, &warehouse_stock, &warehouse_reservations, &payment_payments,
                           &notification_sent, &order_orders}) {
    out.push_back({*name, partitions, true, false});
  }
  return out;
}

std::string SagaKey(OrderId id) { return std::to_string(id); }

std::string ItemKey(ItemId id) { return std::to_string(id); }

std::string CommandKey(OrderId saga, const StepCommand& command) {
  return command.leg == kNoLeg ? SagaKey(saga) : ItemKey(command.leg);
}

std::string ReservationKey(OrderId order, ItemId item) { return std::to_string(order) + "/" + std::to_string(item); }

}  // namespace sagaflow::core
