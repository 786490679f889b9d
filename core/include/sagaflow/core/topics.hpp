#pragma once
/// The Kafka topics of the order saga and their settings. Every name can carry
/// a prefix so that several systems (or test runs) share one broker.

#include <string>
#include <string_view>
#include <vector>

#include "sagaflow/core/types.hpp"

namespace sagaflow::core {

/// How a topic is created.
struct TopicSpec {
  std::string name;
  int32_t partitions = 1;
  /// Compacted changelog (cleanup.policy=compact) rather than a log (delete).
  bool compacted = false;
  /// Kept forever (retention.ms=-1): the saga event log.
  bool retain_forever = false;
};

/// The names of every topic, with an optional prefix.
struct TopicNames {
  explicit TopicNames(std::string prefix = "");

  std::string prefix;
  // Commands and replies (reference names).
  std::string order;                // order -> orchestrator
  std::string status;               // orchestrator -> order
  std::string neworder;             // order -> order: a POST /neworder handed to the instance owning its partition
  std::string warehouse_reserve;    // orchestrator -> warehouse
  std::string warehouse_cancel;     // orchestrator -> warehouse (compensation)
  std::string warehouse_status;     // warehouse -> orchestrator
  std::string warehouse_restock;    // REST edge of any warehouse instance -> the item's owner
  std::string payment_pay;          // orchestrator -> payment
  std::string payment_status;       // payment -> orchestrator
  std::string notification_send;    // orchestrator -> notification
  std::string notification_status;  // notification -> orchestrator
  // Event log, changelogs, dead letters.
  std::string saga_events;
  std::string saga_state;
  std::string warehouse_stock;
  std::string warehouse_reservations;
  std::string payment_payments;
  std::string notification_sent;
  std::string order_orders;
  std::string dlq;

  /// The topic a step's command goes to.
  const std::string& CommandTopic(Step step) const;
  /// The topic a participant replies on.
  const std::string& ReplyTopic(Service service) const;
  /// Every topic with its settings. All saga topics get the same partition
  /// count so that one saga's records meet on the same instance of each service.
  std::vector<TopicSpec> All(int32_t partitions) const;
};

/// The Kafka key of every record of a saga, except the commands of a
/// fanned-out step's legs and what they change (keyed by item).
std::string SagaKey(OrderId id);
/// The Kafka key of an item's records: its stock level, its restocks and the
/// commands of the legs that reserve or release it.
std::string ItemKey(ItemId id);
/// The key of a step command: the leg's (ItemKey) for a leg, else the saga's.
std::string CommandKey(OrderId saga, const StepCommand& command);
/// The key of the reservation of `item` for `order` in
/// orders.warehouse.reservations, "<order>/<item>". Kafka's partitioner
/// would not put it in the item's partition: it is produced to
/// kafka::PartitionOf(ItemKey(item)) explicitly.
std::string ReservationKey(OrderId order, ItemId item);

/// The consumer group of a service ("<prefix>sagaflow-<service>").
std::string GroupIdOf(const std::string& prefix, std::string_view service);
/// What every transactional id and extra group of a service starts with
/// ("<prefix>sagaflow-<service>-"): its tasks' producers, its changelog reader.
std::string ServiceIdPrefixOf(const std::string& prefix, std::string_view service);

/// What one service needs on the broker: the source of its principal's ACLs
/// (see AclBindingsOf) and of the topics it creates when they are missing.
struct ServiceAccess {
  /// "order", "orchestrator", "warehouse", "payment", "notification"; also
  /// the user name of the service's principal.
  std::string service;
  /// Its inputs and its changelogs.
  std::vector<std::string> reads;
  /// Its outputs, its changelogs and the dead-letter topic.
  std::vector<std::string> writes;
};

/// Every service's access, in start order (order, orchestrator, warehouse,
/// payment, notification).
std::vector<ServiceAccess> AccessTable(const TopicNames& topics);
/// The access of `service`; throws std::invalid_argument for an unknown name.
ServiceAccess AccessOf(const TopicNames& topics, std::string_view service);

/// One ACL: `principal` may do `operation` on the resource.
struct AclBinding {
  enum class Resource { kTopic, kGroup, kTransactionalId, kCluster };
  enum class Operation { kRead, kWrite, kIdempotentWrite };
  std::string principal;  // "User:payment"
  Resource resource = Resource::kTopic;
  std::string name;       // "kafka-cluster" for the cluster
  bool prefixed = false;  // the name is a prefix (PREFIXED pattern), not the whole name (LITERAL)
  Operation operation = Operation::kRead;
};

/// The ACLs of a service's principal (User:<service>): READ on every topic it
/// reads, WRITE on every topic it writes, READ on its consumer group and on
/// groups with its id prefix (the changelog reader), WRITE on transactional ids
/// with its id prefix, IDEMPOTENT_WRITE on the cluster. Nothing else: topic
/// creation, other topics and other services' groups and ids are refused.
std::vector<AclBinding> AclBindingsOf(const ServiceAccess& access, const std::string& prefix);
/// Every service's ACLs.
std::vector<AclBinding> AllAclBindings(const TopicNames& topics);
/// "User:payment TOPIC LITERAL orders.service.payment.pay READ".
std::string ToString(const AclBinding& acl);

}  // namespace sagaflow::core
