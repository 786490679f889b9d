#include "sagaflow/replay/participants.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <charconv>

#include "format.hpp"
#include "sagaflow/core/codec.hpp"
#include "sagaflow/core/kafka/kafka_client.hpp"
#include "sagaflow/core/topics.hpp"

namespace sagaflow::replay {
namespace {

using core::OrderId;
using core::ReservationState;

std::string_view ReservationStateName(ReservationState s) {
  switch (s) {
    case ReservationState::kReserved: return "Reserved";
    case ReservationState::kRejected: return "Rejected";
    case ReservationState::kReleased: return "Released";
    default: return "Unknown";
  }
}

template <class T>
core::Status ReadTable(const kafka::KafkaConfig& config, const std::string& topic,
                       std::unordered_map<OrderId, T>& table, int64_t& undecodable) {
  auto result = kafka::ReadToEnd(config, topic, {}, [&](const kafka::Record& record) {
    if (record.value.empty()) {  // a tombstone deletes its key
      OrderId id = 0;
      std::from_chars(record.key.data(), record.key.data() + record.key.size(), id);
      table.erase(id);
      return;
    }
    auto message = core::Decode(record.value);
    const T* value = message.ok() ? std::get_if<T>(&message->payload) : nullptr;
    if (value == nullptr) {
      ++undecodable;
      return;
    }
    table[message->saga_id] = *value;
  });
  if (!result.ok()) return result.error();
  return core::Status::Ok();
}

// orders.warehouse.reservations: "<order>/<item>" per leg, or "<order>" (earlier versions).
core::Status ReadReservations(const kafka::KafkaConfig& config, const std::string& topic,
                              std::unordered_map<OrderId, std::map<core::LegKey, core::Reservation>>& table,
                              int64_t& undecodable) {
  auto result = kafka::ReadToEnd(config, topic, {}, [&](const kafka::Record& record) {
    OrderId id = 0;
    core::LegKey item = core::kNoLeg;
    const char* end = record.key.data() + record.key.size();
    auto parsed = std::from_chars(record.key.data(), end, id);
    if (parsed.ptr != end && *parsed.ptr == '/') std::from_chars(parsed.ptr + 1, end, item);
    if (record.value.empty()) {  // a tombstone deletes its key
      if (auto it = table.find(id); it != table.end()) it->second.erase(item);
      return;
    }
    auto message = core::Decode(record.value);
    const auto* value = message.ok() ? std::get_if<core::Reservation>(&message->payload) : nullptr;
    if (value == nullptr) {
      ++undecodable;
      return;
    }
    table[message->saga_id][value->item_id] = *value;
  });
  if (!result.ok()) return result.error();
  return core::Status::Ok();
}

bool HasRecord(const core::SagaState& state, core::Step step, bool ok) {
  return std::any_of(state.history.begin(), state.history.end(), [&](const core::StepRecord& r) {
    return r.step == step && r.ok == ok && r.detail != "timed out";
  });
}

std::string Describe(const core::Reservation* r) {
  if (r == nullptr) return "no reservation";
  return fmt::format("reservation {} ({})", ReservationStateName(r->state), r->detail);
}
std::string Describe(const std::map<core::LegKey, core::Reservation>* legs) {
  if (legs == nullptr || legs->empty()) return "no reservation";
  std::string out;
  for (const auto& [item, r] : *legs) {
    if (!out.empty()) out += "; ";
    if (item != core::kNoLeg) out += fmt::format("item {}: ", item);
    out += Describe(&r);
  }
  return out;
}
std::string Describe(const core::Payment* p) {
  if (p == nullptr) return "no payment";
  return fmt::format("payment {} of {} ({})", p->ok ? "charged" : "declined", p->amount, p->detail);
}
std::string Describe(const core::Notification* n) {
  if (n == nullptr) return "no notification";
  return fmt::format("notification {} ({})", n->ok ? "sent" : "not sent", n->detail);
}

template <class Map>
const typename Map::mapped_type* Lookup(const Map& map, OrderId id) {
  auto it = map.find(id);
  return it == map.end() ? nullptr : &it->second;
}

}  // namespace

core::Result<ParticipantRecords> ReadParticipants(const SourceOptions& source) {
  const kafka::KafkaConfig config{source.brokers, source.kafka_properties};
  if (auto s = kafka::WaitForBroker(config, std::chrono::milliseconds(source.broker_timeout_ms)); !s.ok()) {
    return core::Error{core::Errc::kUnavailable, "Kafka broker at " + source.brokers + " is unreachable", false};
  }
  const core::TopicNames topics(source.topic_prefix);
  ParticipantRecords out;
  if (auto s = ReadReservations(config, topics.warehouse_reservations, out.reservations, out.undecodable); !s.ok()) {
    return s.error();
  }
  if (auto s = ReadTable(config, topics.payment_payments, out.payments, out.undecodable); !s.ok()) return s.error();
  if (auto s = ReadTable(config, topics.notification_sent, out.notifications, out.undecodable); !s.ok()) return s.error();
  if (auto s = ReadTable(config, topics.order_orders, out.orders, out.undecodable); !s.ok()) return s.error();
  return out;
}

std::vector<Mismatch> CheckParticipants(const Replayer& replayer, const ParticipantRecords& records,
                                        bool whole_history) {
  std::vector<Mismatch> out;
  auto report = [&](OrderId id, std::string check, std::string history, std::string participant) {
    out.push_back(Mismatch{id, std::move(check), std::move(history), std::move(participant)});
  };
  for (const SagaReplay* r : replayer.Sagas()) {
    if (r->partial || r->state.phase != core::SagaPhase::kEnded) continue;
    const OrderId id = r->id;
    const core::SagaState& s = r->state;
    const auto* reservation = Lookup(records.reservations, id);
    const auto* payment = Lookup(records.payments, id);
    const auto* notification = Lookup(records.notifications, id);
    const auto* order = Lookup(records.orders, id);
    const std::string ended = fmt::format("ended {}{}", core::ToString(s.status), s.detail.empty() ? "" : ": " + s.detail);
    auto kept_for = [&](core::LegKey item) {
      if (reservation == nullptr) return false;
      auto it = reservation->find(item);
      return it != reservation->end() && it->second.state == ReservationState::kReserved;
    };
    // OK: every item kept (or the whole order, as earlier versions reserved it); NOT OK: none.
    bool all_kept = kept_for(core::kNoLeg);
    if (!all_kept && !s.order.items.empty()) {
      all_kept = std::all_of(s.order.items.begin(), s.order.items.end(),
                             [&](const core::Item& i) { return kept_for(i.item_id); });
    }
    const bool any_kept =
        reservation && std::any_of(reservation->begin(), reservation->end(), [](const auto& leg) {
          return leg.second.state == ReservationState::kReserved;
        });
    const bool charged = payment && payment->ok;
    if (s.status == core::OrderStatus::kOk) {
      if (!all_kept) report(id, "an OK saga keeps its reservation of every item", ended, Describe(reservation));
      if (!charged || payment->amount != s.order.sum) {
        report(id, fmt::format("an OK saga has one successful charge of its sum {}", s.order.sum), ended,
               Describe(payment));
      }
      if (HasRecord(s, core::Step::kNotify, true) && !(notification && notification->ok)) {
        report(id, "a notification the saga saw succeed was sent", "notify replied OK", Describe(notification));
      }
    } else {
      if (any_kept) report(id, "a NOT OK saga releases its reservation of every item", ended, Describe(reservation));
      if (charged) report(id, "a NOT OK saga has no successful charge", ended, Describe(payment));
    }
    if (order == nullptr) {
      report(id, "every saga has its order", ended, "no order record");
    } else if (order->status != s.status) {
      report(id, "the order's final status is the saga's", ended,
             fmt::format("order status {}{}", core::ToString(order->status),
                         order->detail.empty() ? "" : ": " + order->detail));
    }
  }
  if (whole_history) {
    for (const auto& [id, payment] : records.payments) {
      if (payment.ok && replayer.Find(id) == nullptr) {
        report(id, "every charge belongs to a saga", "no saga", Describe(&payment));
      }
    }
    for (const auto& [id, legs] : records.reservations) {
      for (const auto& [item, reservation] : legs) {
        if (reservation.state == ReservationState::kReserved && replayer.Find(id) == nullptr) {
          report(id, "every kept reservation belongs to a saga", "no saga", Describe(&reservation));
        }
      }
    }
  }
  std::sort(out.begin(), out.end(), [](const Mismatch& a, const Mismatch& b) { return a.saga_id < b.saga_id; });
  return out;
}

}  // namespace sagaflow::replay
