#pragma once
/// The Kafka topics of the order saga and their settings. Every name can carry
/// a prefix so that several systems (or test runs) share one broker.

#include <string>
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

}  // namespace sagaflow::core
