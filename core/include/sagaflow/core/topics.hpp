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
  std::string neworder;             // order -> order: a POST /neworder handed to the instance owning its partition
  std::string warehouse_reserve;    // orchestrator -> warehouse
  std::string warehouse_cancel;     // orchestrator -> warehouse (compensation)
  std::string warehouse_status;     // warehouse -> orchestrator
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

/// The Kafka key of every record of a saga.
std::string SagaKey(OrderId id);

}  // namespace sagaflow::core
