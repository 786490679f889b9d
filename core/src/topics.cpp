#include "sagaflow/core/topics.hpp"

#include <stdexcept>

#include "sagaflow/core/result.hpp"

namespace sagaflow::core {

TopicNames::TopicNames(std::string p)
    : prefix(std::move(p)),
      order(prefix + "orders.service.order"),
      status(prefix + "orders.service.status"),
      neworder(prefix + "orders.service.neworder"),
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
  for (const auto* name : {&order, &status, &neworder, &warehouse_reserve, &warehouse_cancel, &warehouse_status,
                           &warehouse_restock, &payment_pay, &payment_status, &notification_send, &notification_status,
                           &dlq}) {
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

std::string GroupIdOf(const std::string& prefix, std::string_view service) {
  return prefix + "sagaflow-" + std::string(service);
}

std::string ServiceIdPrefixOf(const std::string& prefix, std::string_view service) {
  return GroupIdOf(prefix, service) + "-";
}

std::vector<ServiceAccess> AccessTable(const TopicNames& t) {
  return {
      {"order", {t.status, t.neworder, t.order_orders}, {t.order, t.neworder, t.order_orders, t.dlq}},
      {"orchestrator",
       {t.order, t.warehouse_status, t.payment_status, t.notification_status, t.saga_events, t.saga_state},
       {t.warehouse_reserve, t.warehouse_cancel, t.payment_pay, t.notification_send, t.status, t.saga_events,
        t.saga_state, t.dlq}},
      {"warehouse",
       {t.warehouse_reserve, t.warehouse_cancel, t.warehouse_restock, t.warehouse_stock, t.warehouse_reservations},
       {t.warehouse_status, t.warehouse_restock, t.warehouse_stock, t.warehouse_reservations, t.dlq}},
      {"payment", {t.payment_pay, t.payment_payments}, {t.payment_status, t.payment_payments, t.dlq}},
      {"notification", {t.notification_send, t.notification_sent}, {t.notification_status, t.notification_sent, t.dlq}},
  };
}

ServiceAccess AccessOf(const TopicNames& topics, std::string_view service) {
  for (auto& access : AccessTable(topics)) {
    if (access.service == service) return access;
  }
  throw std::invalid_argument("unknown service '" + std::string(service) + "'");
}

std::vector<AclBinding> AclBindingsOf(const ServiceAccess& access, const std::string& prefix) {
  using R = AclBinding::Resource;
  using O = AclBinding::Operation;
  const std::string principal = "User:" + access.service;
  std::vector<AclBinding> out;
  for (const auto& topic : access.reads) out.push_back({principal, R::kTopic, topic, false, O::kRead});
  for (const auto& topic : access.writes) out.push_back({principal, R::kTopic, topic, false, O::kWrite});
  out.push_back({principal, R::kGroup, GroupIdOf(prefix, access.service), false, O::kRead});
  out.push_back({principal, R::kGroup, ServiceIdPrefixOf(prefix, access.service), true, O::kRead});
  out.push_back({principal, R::kTransactionalId, ServiceIdPrefixOf(prefix, access.service), true, O::kWrite});
  out.push_back({principal, R::kCluster, "kafka-cluster", false, O::kIdempotentWrite});
  return out;
}

std::vector<AclBinding> AllAclBindings(const TopicNames& topics) {
  std::vector<AclBinding> out;
  for (const auto& access : AccessTable(topics)) {
    auto acls = AclBindingsOf(access, topics.prefix);
    out.insert(out.end(), acls.begin(), acls.end());
  }
  return out;
}

std::string ToString(const AclBinding& acl) {
  using R = AclBinding::Resource;
  using O = AclBinding::Operation;
  const char* resource = acl.resource == R::kTopic             ? "TOPIC"
                         : acl.resource == R::kGroup           ? "GROUP"
                         : acl.resource == R::kTransactionalId ? "TRANSACTIONAL_ID"
                                                               : "CLUSTER";
  const char* operation = acl.operation == O::kRead ? "READ" : acl.operation == O::kWrite ? "WRITE" : "IDEMPOTENT_WRITE";
  return acl.principal + " " + resource + " " + (acl.prefixed ? "PREFIXED " : "LITERAL ") + acl.name + " " + operation;
}

std::string ItemKey(ItemId id) { return std::to_string(id); }

std::string CommandKey(OrderId saga, const StepCommand& command) {
  return command.leg == kNoLeg ? SagaKey(saga) : ItemKey(command.leg);
}

std::string ReservationKey(OrderId order, ItemId item) { return std::to_string(order) + "/" + std::to_string(item); }

}  // namespace sagaflow::core
