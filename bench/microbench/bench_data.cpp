#include "bench_data.hpp"

#include <string>

namespace sagaflow::bench {

core::Order SampleOrder(core::OrderId id) {
  return core::Order{.order_id = id,
                     .user_id = 2,
                     .payment = core::PaymentType::kCard,
                     .notification = core::NotificationType::kEmail,
                     .created_at = "2023-11-01T16:35:39.645580261+03:00",
                     .approved_at = "2023-11-01T16:35:39.645580311+03:00",
                     .sum = 10000,
                     .items = {core::Item{.item_id = 10, .quantity = 2, .price = 45},
                               core::Item{.item_id = 15, .quantity = 1, .price = 10}}};
}

core::Message SampleStepCommandMessage(core::OrderId id) {
  const std::string sid = std::to_string(id);
  return core::Message{.message_id = "orchestrator-" + sid + "-reserve_stock-1",
                       .saga_id = id,
                       .causation_id = "order-" + sid + "-placed",
                       .produced_at_ms = kBenchStartMs,
                       .schema_version = 1,
                       .payload = core::StepCommand{.step = core::Step::kReserveStock,
                                                    .attempt = 1,
                                                    .order = SampleOrder(id)}};
}

}  // namespace sagaflow::bench
