#include "fuzz_entries.hpp"

#include <algorithm>
#include <exception>
#include <memory>
#include <optional>
#include <variant>

#include "sagaflow/core/codec.hpp"
#include "sagaflow/core/saga_aggregate.hpp"
#include "sagaflow/core/saga_definition.hpp"
#include "sagaflow/core/topics.hpp"
#include "sagaflow/notification/notification_service.hpp"
#include "sagaflow/payment/payment_service.hpp"
#include "sagaflow/replay/replayer.hpp"
#include "sagaflow/runtime/http_server.hpp"
#include "sagaflow/runtime/order_json.hpp"
#include "sagaflow/runtime/participant.hpp"
#include "sagaflow/warehouse/warehouse_service.hpp"

namespace sagaflow::fuzz {
namespace {

// The bounds the REST edge documents for an order (order_json.hpp).
constexpr size_t kMaxItems = 1000;
constexpr int64_t kMaxQuantity = 1'000'000'000;

std::string Describe(const std::exception& e) { return std::string("threw std::exception: ") + e.what(); }

// Encodes `message` and decodes it again: "" when it comes back equal.
std::string RoundTrip(const core::Message& message, const char* what) {
  auto again = core::Decode(core::Encode(message));
  if (!again.ok()) return std::string(what) + " does not decode after Encode: " + again.error().message;
  if (!(again.value() == message)) return std::string(what) + " decodes to a different message after Encode";
  return {};
}

std::string CheckOrder(const core::Order& o) {
  if (o.order_id < 0 || o.user_id < 0 || o.sum < 0) return "accepted a negative order id, user id or sum";
  if (o.payment != core::PaymentType::kCard && o.payment != core::PaymentType::kSbp) return "accepted a payment type";
  if (o.notification != core::NotificationType::kEmail && o.notification != core::NotificationType::kSms) {
    return "accepted an unknown notification type";
  }
  if (o.items.empty() || o.items.size() > kMaxItems) return "accepted an order with 0 or too many items";
  for (const auto& i : o.items) {
    if (i.item_id < 0 || i.price < 0) return "accepted a negative item id or price";
    if (i.quantity < 1 || i.quantity > kMaxQuantity) return "accepted a quantity out of [1, 1e9]";
  }
  return {};
}

// The three participants, built once (no Kafka, no disk: only Start touches them).
struct Participants {
  std::unique_ptr<runtime::Participant> warehouse =
      warehouse::MakeWarehouse(runtime::ServiceOptions{}, warehouse::WarehouseOptions{});
  std::unique_ptr<runtime::Participant> payment =
      payment::MakePayment(runtime::ServiceOptions{}, runtime::ParticipantOptions{});
  std::unique_ptr<runtime::Participant> notification =
      notification::MakeNotification(runtime::ServiceOptions{}, runtime::ParticipantOptions{});
};

Participants& TheParticipants() {
  static Participants participants;
  return participants;
}

// What the state code of a participant relies on for a command it accepted.
std::string CheckAccepted(const runtime::Participant& p, std::string_view key, const core::Message& m) {
  const auto* command = std::get_if<core::StepCommand>(&m.payload);
  if (command == nullptr) return "accepted a " + std::string(core::PayloadName(m.payload));
  if (!p.Handles(command->step)) return "accepted a step the participant does not execute";
  if (m.saga_id <= 0 || command->order.order_id != m.saga_id || key != core::SagaKey(m.saga_id)) {
    return "accepted a command whose saga id, order id and key disagree";
  }
  const auto& order = command->order;
  switch (p.role()) {
    case core::Service::kWarehouse:
      if (command->step != core::Step::kReserveStock) break;  // a release reads the recorded reservation
      if (order.items.empty() || order.items.size() > kMaxItems) return "accepted a reservation of 0 or too many lines";
      for (const auto& i : order.items) {
        if (i.item_id < 0 || i.quantity < 1 || i.quantity > kMaxQuantity) {
          return "accepted a reservation line with a negative item id or a quantity out of [1, 1e9]";
        }
      }
      break;
    case core::Service::kPayment:
      if (order.sum < 0) return "accepted a negative sum to charge";
      if (order.payment != core::PaymentType::kCard && order.payment != core::PaymentType::kSbp) {
        return "accepted an unknown payment type";
      }
      break;
    case core::Service::kNotification:
      if (order.notification != core::NotificationType::kEmail && order.notification != core::NotificationType::kSms) {
        return "accepted an unknown notification channel";
      }
      break;
    case core::Service::kNone: return "a participant without a role";
  }
  return {};
}

// The dead letter ServiceTask::DeadLetter writes for a rejected record must decode back intact.
std::string CheckDeadLetter(const runtime::Participant& p, std::string_view key, std::string_view value,
                            const std::string& reason) {
  if (reason.empty()) return "an empty dead-letter reason";
  core::Message m;
  m.message_id = "dlq-fuzz";
  m.payload = core::DeadLetter{reason, "orders.fuzz", 0, 0, std::string(key), std::string(value), p.name()};
  return RoundTrip(m, "the dead letter");
}

}  // namespace

std::string FuzzDecode(std::string_view bytes) {
  try {
    auto decoded = core::Decode(bytes);
    if (!decoded.ok()) {
      if (decoded.error().message.empty()) return "a rejection without a reason";
      return {};
    }
    (void)core::PayloadName(decoded->payload);
    return RoundTrip(decoded.value(), "a decoded message");
  } catch (const std::exception& e) {
    return Describe(e);
  }
}

std::string FuzzOrderJson(std::string_view bytes) {
  runtime::HttpRequest request;
  request.method = "POST";
  request.path = "/neworder";
  request.body = std::string(bytes);
  try {
    core::Order order;
    try {
      order = runtime::OrderFromJson(runtime::ParseJsonBody(request));
    } catch (const runtime::HttpError& e) {
      if (e.status < 400 || e.status > 499) return "an HttpError with status " + std::to_string(e.status);
      // The server writes this answer for it (a 500 if that throws).
      const auto answer = runtime::HttpResponse::Error(e.status, e.message);
      if (answer.status != e.status || answer.body.empty()) return "the 4xx answer was not written";
      return {};
    }
    if (auto bad = CheckOrder(order); !bad.empty()) return bad;
    const auto json = runtime::OrderToJson(order);
    (void)json.dump();
    if (!(runtime::OrderFromJson(json) == order)) return "OrderFromJson(OrderToJson(order)) differs from the order";
    core::Message placed;
    placed.message_id = "order-fuzz";
    placed.saga_id = order.order_id;
    placed.payload = core::OrderPlaced{order};
    return RoundTrip(placed, "the OrderPlaced message");
  } catch (const runtime::HttpError& e) {
    return "the accepted order's JSON was refused: " + e.message;
  } catch (const std::exception& e) {
    return Describe(e);
  }
}

std::string FuzzParticipantRecord(std::string_view bytes) {
  if (bytes.empty()) return {};
  const auto selector = static_cast<uint8_t>(bytes[0]);
  bytes.remove_prefix(1);
  std::optional<std::string_view> key;
  if ((selector & 4) != 0) {
    if (bytes.empty()) return {};
    const size_t length = std::min<size_t>(static_cast<uint8_t>(bytes[0]), bytes.size() - 1);
    key = bytes.substr(1, length);
    bytes.remove_prefix(1 + length);
  }
  auto& all = TheParticipants();
  std::vector<const runtime::Participant*> participants;
  switch (selector & 3) {
    case 0: participants = {all.warehouse.get()}; break;
    case 1: participants = {all.payment.get()}; break;
    case 2: participants = {all.notification.get()}; break;
    default: participants = {all.warehouse.get(), all.payment.get(), all.notification.get()}; break;
  }
  try {
    auto decoded = core::Decode(bytes);
    for (const auto* p : participants) {
      if (!decoded.ok()) {
        if (auto bad = CheckDeadLetter(*p, key.value_or(""), bytes, decoded.error().message); !bad.empty()) return bad;
        continue;
      }
      const std::string record_key = key ? std::string(*key) : core::SagaKey(decoded->saga_id);
      const auto reason = runtime::InvalidCommandRecord(*p, record_key, decoded.value());
      auto bad = reason.empty() ? CheckAccepted(*p, record_key, decoded.value())
                                : CheckDeadLetter(*p, record_key, bytes, reason);
      if (!bad.empty()) return p->name() + ": " + bad;
    }
    return {};
  } catch (const std::exception& e) {
    return Describe(e);
  }
}

std::string FuzzSagaInputs(std::string_view bytes) {
  constexpr core::OrderId kSaga = 42;
  static const core::SagaDefinition def = core::OrderSagaDefinition();
  core::Order order;
  order.order_id = kSaga;
  order.user_id = 2;
  order.payment = core::PaymentType::kCard;
  order.notification = core::NotificationType::kEmail;
  order.sum = 100;
  order.items = {core::Item{10, 2, 45}, core::Item{15, 1, 10}};

  try {
    replay::Replayer replayer(def, replay::ReplayerOptions{true, kSaga});
    core::SagaState state;
    core::TimeMs now = 1'700'000'000'000;
    int64_t offset = 0;
    auto handle = [&](const core::SagaInput& input) {
      for (const auto& event : core::Decide(def, state, input, now).events) {
        state = core::Apply(def, std::move(state), event);
        replayer.AddEvent(kSaga, event, 0, offset++);
      }
    };
    handle(core::OrderPlaced{order});
    for (size_t i = 0; i + 3 <= bytes.size(); i += 3) {
      const auto kind = static_cast<uint8_t>(bytes[i]) % 4;
      const auto a = static_cast<uint8_t>(bytes[i + 1]);
      const auto b = static_cast<uint8_t>(bytes[i + 2]);
      now += 1;
      if (kind == 1) {
        now += a * 1000 + b;
        if (state.phase != core::SagaPhase::kEnded && state.pending && state.pending->deadline_ms <= now) {
          handle(core::Tick{now});
        }
      } else if (kind == 2) {
        handle(core::OrderPlaced{order});
      } else {
        // A reply as a participant (or a forger) would send it, as it comes out of Decode.
        core::Message m;
        m.message_id = "reply-fuzz";
        m.saga_id = kSaga;
        m.payload = core::StepReply{static_cast<core::Step>(a % 8), b >> 1, (b & 1) != 0, kind == 3 ? "fuzz" : ""};
        auto decoded = core::Decode(core::Encode(m));
        if (!decoded.ok()) continue;
        const auto* reply = std::get_if<core::StepReply>(&decoded->payload);
        if (reply == nullptr) return "a StepReply decodes as " + std::string(core::PayloadName(decoded->payload));
        if (state.phase == core::SagaPhase::kNotStarted || state.phase == core::SagaPhase::kEnded) continue;
        handle(*reply);
      }
    }
    replayer.Finish();
    const auto* saga = replayer.Find(kSaga);
    if (saga == nullptr) return "the replayer lost the saga";
    if (!saga->violations.empty()) return "broken saga invariant: " + saga->violations.front();
    if (saga->divergence) {
      return "the log does not replay to the same decisions at event " + std::to_string(saga->divergence->index) +
             ": recorded " + saga->divergence->recorded + ", expected " + saga->divergence->expected;
    }
    if (!(saga->state.phase == state.phase && saga->state.version == state.version)) {
      return "the replayed saga differs from the live one";
    }
    return {};
  } catch (const std::exception& e) {
    return Describe(e);
  }
}

const std::vector<Target>& Targets() {
  static const std::vector<Target> kTargets = {
      {"decode", &FuzzDecode}, {"order_json", &FuzzOrderJson}, {"participant_record", &FuzzParticipantRecord},
      {"saga_inputs", &FuzzSagaInputs}};
  return kTargets;
}

}  // namespace sagaflow::fuzz
