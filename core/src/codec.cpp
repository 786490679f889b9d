#include "sagaflow/core/codec.hpp"

#include <flatbuffers/flatbuffers.h>

#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "sagaflow/schemas/sagaflow_generated.h"

namespace sagaflow::core {
namespace {

namespace w = sagaflow::wire;
using Builder = flatbuffers::FlatBufferBuilder;

// Thrown only inside Decode and converted to an Error there: it lets the
// readers below stay linear instead of checking every nested field by hand.
struct DecodeError {
  std::string message;
};

template <class E>
int8_t CheckedEnum(E value, int8_t max, const char* what) {
  const auto raw = static_cast<int8_t>(value);
  if (raw < 0 || raw > max) throw DecodeError{std::string("unknown ") + what + " " + std::to_string(raw)};
  return raw;
}

std::string Str(const flatbuffers::String* s) { return s == nullptr ? std::string() : s->str(); }

// ---- encoding ----

flatbuffers::Offset<w::Order> WriteOrder(Builder& b, const Order& o) {
  std::vector<w::Item> items;
  items.reserve(o.items.size());
  for (const auto& i : o.items) items.emplace_back(i.item_id, i.quantity, i.price);
  // Sized strings everywhere, never c_str(): a string may hold a NUL (it
  // comes from outside), and must decode to the same bytes.
  auto created_at = b.CreateString(o.created_at);
  auto approved_at = b.CreateString(o.approved_at);
  auto item_vector = b.CreateVectorOfStructs(items);
  return w::CreateOrder(b, o.order_id, o.user_id, static_cast<w::PaymentType>(o.payment),
                        static_cast<w::NotificationType>(o.notification), created_at, approved_at, o.sum,
                        item_vector);
}

flatbuffers::Offset<flatbuffers::Vector<const w::Item*>> WriteItems(Builder& b, const std::vector<Item>& in) {
  std::vector<w::Item> items;
  items.reserve(in.size());
  for (const auto& i : in) items.emplace_back(i.item_id, i.quantity, i.price);
  return b.CreateVectorOfStructs(items);
}

flatbuffers::Offset<flatbuffers::Vector<flatbuffers::Offset<w::StepRecord>>> WriteSteps(
    Builder& b, const std::vector<StepRecord>& steps) {
  std::vector<flatbuffers::Offset<w::StepRecord>> out;
  out.reserve(steps.size());
  for (const auto& s : steps) {
    auto detail = b.CreateString(s.detail);
    out.push_back(w::CreateStepRecord(b, static_cast<w::Step>(s.step), s.attempt, s.ok, s.at_ms, detail, s.leg));
  }
  return b.CreateVector(out);
}

// An absent list (every event but a compensation decision) costs nothing on the wire.
flatbuffers::Offset<flatbuffers::Vector<w::Step>> WriteStepList(Builder& b, const std::vector<Step>& steps) {
  if (steps.empty()) return 0;
  std::vector<w::Step> raw;
  raw.reserve(steps.size());
  for (Step step : steps) raw.push_back(static_cast<w::Step>(step));
  return b.CreateVector(raw);
}

// Like WriteStepList: absent when empty (every step that does not fan out).
flatbuffers::Offset<flatbuffers::Vector<int64_t>> WriteLegs(Builder& b, const std::vector<LegKey>& legs) {
  if (legs.empty()) return 0;
  return b.CreateVector(legs);
}

flatbuffers::Offset<w::SagaEvent> WriteSagaEvent(Builder& b, const SagaEvent& m) {
  w::SagaEventBody body_type = w::SagaEventBody::NONE;
  flatbuffers::Offset<void> body = std::visit(
      [&](const auto& e) -> flatbuffers::Offset<void> {
        using T = std::decay_t<decltype(e)>;
        if constexpr (std::is_same_v<T, SagaStarted>) {
          body_type = w::SagaEventBody::SagaStarted;
          auto order = WriteOrder(b, e.order);
          return w::CreateSagaStarted(b, order).Union();
        } else if constexpr (std::is_same_v<T, StepRequested>) {
          body_type = w::SagaEventBody::StepRequested;
          auto legs = WriteLegs(b, e.legs);
          return w::CreateStepRequested(b, static_cast<w::Step>(e.step), e.attempt, e.deadline_ms, legs).Union();
        } else if constexpr (std::is_same_v<T, StepReplied>) {
          body_type = w::SagaEventBody::StepReplied;
          auto detail = b.CreateString(e.detail);
          auto compensations = WriteStepList(b, e.compensations);
          return w::CreateStepReplied(b, static_cast<w::Step>(e.step), e.attempt, e.ok, detail,
                                      static_cast<w::StepOutcome>(e.outcome), compensations, e.leg)
              .Union();
        } else if constexpr (std::is_same_v<T, StepTimedOut>) {
          body_type = w::SagaEventBody::StepTimedOut;
          auto compensations = WriteStepList(b, e.compensations);
          return w::CreateStepTimedOut(b, static_cast<w::Step>(e.step), e.attempt,
                                       static_cast<w::StepOutcome>(e.outcome), compensations)
              .Union();
        } else {
          static_assert(std::is_same_v<T, SagaEnded>);
          body_type = w::SagaEventBody::SagaEnded;
          auto detail = b.CreateString(e.detail);
          return w::CreateSagaEnded(b, static_cast<w::OrderStatus>(e.status), detail).Union();
        }
      },
      m.body);
  return w::CreateSagaEvent(b, m.at_ms, body_type, body);
}

struct PayloadWriter {
  Builder& b;
  w::Payload type = w::Payload::NONE;

  flatbuffers::Offset<void> operator()(const OrderPlaced& m) {
    type = w::Payload::OrderPlaced;
    auto order = WriteOrder(b, m.order);
    return w::CreateOrderPlaced(b, order).Union();
  }
  flatbuffers::Offset<void> operator()(const StepCommand& m) {
    type = w::Payload::StepCommand;
    auto order = WriteOrder(b, m.order);
    return w::CreateStepCommand(b, static_cast<w::Step>(m.step), m.attempt, order, m.leg).Union();
  }
  flatbuffers::Offset<void> operator()(const StepReply& m) {
    type = w::Payload::StepReply;
    auto detail = b.CreateString(m.detail);
    return w::CreateStepReply(b, static_cast<w::Step>(m.step), m.attempt, m.ok, detail, m.leg).Union();
  }
  flatbuffers::Offset<void> operator()(const FinalStatus& m) {
    type = w::Payload::FinalStatus;
    auto steps = WriteSteps(b, m.steps);
    auto detail = b.CreateString(m.detail);
    return w::CreateFinalStatus(b, static_cast<w::OrderStatus>(m.status), detail, steps).Union();
  }
  flatbuffers::Offset<void> operator()(const SagaEvent& m) {
    type = w::Payload::SagaEvent;
    return WriteSagaEvent(b, m).Union();
  }
  flatbuffers::Offset<void> operator()(const SagaEvents& m) {
    type = w::Payload::SagaEvents;
    std::vector<flatbuffers::Offset<w::SagaEvent>> events;
    events.reserve(m.events.size());
    for (const auto& e : m.events) events.push_back(WriteSagaEvent(b, e));
    auto vector = b.CreateVector(events);
    return w::CreateSagaEvents(b, vector).Union();
  }
  flatbuffers::Offset<void> operator()(const StockLevel& m) {
    type = w::Payload::StockLevel;
    flatbuffers::Offset<flatbuffers::Vector<flatbuffers::Offset<w::AppliedRestock>>> restocks;
    if (!m.restocks.empty()) {
      std::vector<flatbuffers::Offset<w::AppliedRestock>> raw;
      raw.reserve(m.restocks.size());
      for (const auto& r : m.restocks) {
        raw.push_back(w::CreateAppliedRestock(b, b.CreateString(r.key), r.request_hash, r.at_ms));
      }
      restocks = b.CreateVector(raw);
    }
    return w::CreateStockLevel(b, m.item_id, m.available, m.reserved, restocks).Union();
  }
  flatbuffers::Offset<void> operator()(const Reservation& m) {
    type = w::Payload::Reservation;
    auto items = WriteItems(b, m.items);
    auto detail = b.CreateString(m.detail);
    return w::CreateReservation(b, m.order_id, static_cast<w::ReservationState>(m.state), items, m.reply_ok, detail,
                                m.at_ms, m.released_without_reserve, m.item_id)
        .Union();
  }
  flatbuffers::Offset<void> operator()(const Payment& m) {
    type = w::Payload::Payment;
    auto detail = b.CreateString(m.detail);
    return w::CreatePayment(b, m.order_id, m.user_id, m.amount, static_cast<w::PaymentType>(m.payment), m.ok, detail,
                            m.at_ms)
        .Union();
  }
  flatbuffers::Offset<void> operator()(const Notification& m) {
    type = w::Payload::Notification;
    auto detail = b.CreateString(m.detail);
    return w::CreateNotification(b, m.order_id, m.user_id, static_cast<w::NotificationType>(m.channel), m.ok, detail,
                                 m.at_ms)
        .Union();
  }
  flatbuffers::Offset<void> operator()(const OrderRecord& m) {
    type = w::Payload::OrderRecord;
    auto order = WriteOrder(b, m.order);
    auto steps = WriteSteps(b, m.steps);
    auto detail = b.CreateString(m.detail);
    auto key = b.CreateString(m.idempotency_key);
    return w::CreateOrderRecord(b, order, static_cast<w::OrderStatus>(m.status), detail, steps, m.accepted_at_ms,
                                m.finished_at_ms, key)
        .Union();
  }
  flatbuffers::Offset<void> operator()(const SagaState& m) {
    type = w::Payload::SagaState;
    auto order = WriteOrder(b, m.order);
    flatbuffers::Offset<w::PendingRequest> pending = 0;
    if (m.pending) {
      pending = w::CreatePendingRequest(b, static_cast<w::Step>(m.pending->step), m.pending->attempt,
                                        m.pending->deadline_ms);
    }
    auto steps = [&](const std::vector<Step>& in) {
      std::vector<int8_t> raw;
      for (auto s : in) raw.push_back(static_cast<int8_t>(s));
      return b.CreateVector(reinterpret_cast<const w::Step*>(raw.data()), raw.size());
    };
    auto succeeded = steps(m.succeeded);
    auto to_compensate = steps(m.to_compensate);
    auto failure = b.CreateString(m.failure);
    auto notes = b.CreateVectorOfStrings(m.notes);
    auto history = WriteSteps(b, m.history);
    auto detail = b.CreateString(m.detail);
    flatbuffers::Offset<flatbuffers::Vector<flatbuffers::Offset<w::LegRecord>>> legs = 0;
    if (!m.legs.empty()) {
      std::vector<flatbuffers::Offset<w::LegRecord>> raw;
      raw.reserve(m.legs.size());
      for (const auto& l : m.legs) {
        raw.push_back(w::CreateLegRecord(b, static_cast<w::Step>(l.step), l.leg, static_cast<int8_t>(l.status)));
      }
      legs = b.CreateVector(raw);
    }
    return w::CreateSagaState(b, m.order_id, order, static_cast<int8_t>(m.phase), pending, succeeded, to_compensate,
                              failure, notes, history, static_cast<w::OrderStatus>(m.status), detail,
                              m.started_at_ms, m.ended_at_ms, m.version, legs)
        .Union();
  }
  flatbuffers::Offset<void> operator()(const Restock& m) {
    type = w::Payload::Restock;
    auto key = m.idempotency_key.empty() ? flatbuffers::Offset<flatbuffers::String>()
                                         : b.CreateString(m.idempotency_key);
    return w::CreateRestock(b, m.item_id, m.quantity, key, m.request_hash).Union();
  }
  flatbuffers::Offset<void> operator()(const DeadLetter& m) {
    type = w::Payload::DeadLetter;
    // Sized strings, not c_str(): the source key is copied from an arbitrary
    // record and may hold NUL bytes.
    auto reason = b.CreateString(m.reason);
    auto topic = b.CreateString(m.source_topic);
    auto key = b.CreateString(m.source_key);
    auto original = b.CreateVector(reinterpret_cast<const uint8_t*>(m.original.data()), m.original.size());
    auto service = b.CreateString(m.service);
    return w::CreateDeadLetter(b, reason, topic, m.source_partition, m.source_offset, key, original, service)
        .Union();
  }
};

// ---- decoding ----

std::vector<Item> ReadItems(const flatbuffers::Vector<const w::Item*>* items) {
  std::vector<Item> out;
  if (items == nullptr) return out;
  // The verifier checks a vector's length field, not that its 8-byte structs
  // are aligned; Encode always aligns a non-empty one, so a misaligned one is corrupt.
  if (items->size() > 0 && reinterpret_cast<uintptr_t>(items->Data()) % alignof(w::Item) != 0) {
    throw DecodeError{"order items are misaligned (corrupt envelope)"};
  }
  out.reserve(items->size());
  for (const auto* i : *items) out.push_back(Item{i->item_id(), i->quantity(), i->price()});
  return out;
}

Order ReadOrder(const w::Order* o, const char* where) {
  if (o == nullptr) throw DecodeError{std::string(where) + " has no order"};
  Order out;
  out.order_id = o->order_id();
  out.user_id = o->user_id();
  out.payment = static_cast<PaymentType>(CheckedEnum(o->payment(), 2, "payment type"));
  out.notification = static_cast<NotificationType>(CheckedEnum(o->notification(), 2, "notification type"));
  out.created_at = Str(o->created_at());
  out.approved_at = Str(o->approved_at());
  out.sum = o->sum();
  out.items = ReadItems(o->items());
  return out;
}

Step ReadStep(w::Step step) { return static_cast<Step>(CheckedEnum(step, 4, "step")); }
StepOutcome ReadOutcome(w::StepOutcome o) { return static_cast<StepOutcome>(CheckedEnum(o, 6, "step outcome")); }

std::vector<LegKey> ReadLegs(const flatbuffers::Vector<int64_t>* legs) {
  if (legs == nullptr) return {};
  // As for items: the verifier does not check that 8-byte scalars are aligned,
  // Encode always aligns them, so a misaligned vector is corrupt.
  if (legs->size() > 0 && reinterpret_cast<uintptr_t>(legs->Data()) % alignof(int64_t) != 0) {
    throw DecodeError{"saga event legs are misaligned (corrupt envelope)"};
  }
  return {legs->begin(), legs->end()};
}

std::vector<Step> ReadStepList(const flatbuffers::Vector<w::Step>* steps) {
  std::vector<Step> out;
  if (steps == nullptr) return out;
  out.reserve(steps->size());
  for (auto step : *steps) out.push_back(ReadStep(step));
  return out;
}

OrderStatus ReadStatus(w::OrderStatus s) { return static_cast<OrderStatus>(CheckedEnum(s, 5, "order status")); }

std::vector<StepRecord> ReadSteps(const flatbuffers::Vector<flatbuffers::Offset<w::StepRecord>>* steps) {
  std::vector<StepRecord> out;
  if (steps == nullptr) return out;
  out.reserve(steps->size());
  for (const auto* s : *steps) {
    out.push_back(StepRecord{ReadStep(s->step()), s->attempt(), s->ok(), s->at_ms(), Str(s->detail()), s->leg()});
  }
  return out;
}

SagaEventBody ReadSagaEventBody(const w::SagaEvent* e) {
  // The verifier accepts a union whose type is set but whose table is absent.
  if (e->body() == nullptr) {
    throw DecodeError{e->body_type() == w::SagaEventBody::NONE ? "SagaEvent has no body"
                                                                : "SagaEvent body is missing its table"};
  }
  switch (e->body_type()) {
    case w::SagaEventBody::SagaStarted:
      return SagaStarted{ReadOrder(e->body_as_SagaStarted()->order(), "SagaStarted")};
    case w::SagaEventBody::StepRequested: {
      const auto* r = e->body_as_StepRequested();
      return StepRequested{ReadStep(r->step()), r->attempt(), r->deadline_ms(), ReadLegs(r->legs())};
    }
    case w::SagaEventBody::StepReplied: {
      const auto* r = e->body_as_StepReplied();
      return StepReplied{ReadStep(r->step()),          r->attempt(),
                         r->ok(),                      Str(r->detail()),
                         ReadOutcome(r->outcome()),    ReadStepList(r->compensations()),
                         r->leg()};
    }
    case w::SagaEventBody::StepTimedOut: {
      const auto* r = e->body_as_StepTimedOut();
      return StepTimedOut{ReadStep(r->step()), r->attempt(), ReadOutcome(r->outcome()),
                          ReadStepList(r->compensations())};
    }
    case w::SagaEventBody::SagaEnded: {
      const auto* r = e->body_as_SagaEnded();
      return SagaEnded{ReadStatus(r->status()), Str(r->detail())};
    }
    default:
      break;
  }
  throw DecodeError{"SagaEvent has unknown body type " + std::to_string(static_cast<int>(e->body_type()))};
}

// Reads the payload of a verified envelope. A null accessor means the union
// member is missing or of a type this build does not know.
Payload ReadPayload(const w::Envelope* env) {
  const auto type = env->payload_type();
  if (env->payload() == nullptr) {
    throw DecodeError{type == w::Payload::NONE ? "envelope has no payload"
                                               : "envelope payload is missing its table"};
  }
  switch (type) {
    case w::Payload::OrderPlaced:
      return OrderPlaced{ReadOrder(env->payload_as_OrderPlaced()->order(), "OrderPlaced")};
    case w::Payload::StepCommand: {
      const auto* m = env->payload_as_StepCommand();
      return StepCommand{ReadStep(m->step()), m->attempt(), ReadOrder(m->order(), "StepCommand"), m->leg()};
    }
    case w::Payload::StepReply: {
      const auto* m = env->payload_as_StepReply();
      return StepReply{ReadStep(m->step()), m->attempt(), m->ok(), Str(m->detail()), m->leg()};
    }
    case w::Payload::FinalStatus: {
      const auto* m = env->payload_as_FinalStatus();
      return FinalStatus{ReadStatus(m->status()), Str(m->detail()), ReadSteps(m->steps())};
    }
    case w::Payload::SagaEvent: {
      const auto* m = env->payload_as_SagaEvent();
      return SagaEvent{m->at_ms(), ReadSagaEventBody(m)};
    }
    case w::Payload::SagaEvents: {
      const auto* m = env->payload_as_SagaEvents();
      if (m->events() == nullptr || m->events()->size() == 0) throw DecodeError{"SagaEvents has no events"};
      SagaEvents out;
      out.events.reserve(m->events()->size());
      for (const auto* e : *m->events()) out.events.push_back(SagaEvent{e->at_ms(), ReadSagaEventBody(e)});
      return out;
    }
    case w::Payload::StockLevel: {
      const auto* m = env->payload_as_StockLevel();
      StockLevel out{m->item_id(), m->available(), m->reserved()};
      if (m->restocks() != nullptr) {
        for (const auto* r : *m->restocks()) out.restocks.push_back({Str(r->key()), r->request_hash(), r->at_ms()});
      }
      return out;
    }
    case w::Payload::Reservation: {
      const auto* m = env->payload_as_Reservation();
      return Reservation{m->order_id(),
                         static_cast<ReservationState>(CheckedEnum(m->state(), 3, "reservation state")),
                         ReadItems(m->items()),
                         m->reply_ok(),
                         Str(m->detail()),
                         m->at_ms(),
                         m->released_without_reserve(),
                         m->item_id()};
    }
    case w::Payload::Payment: {
      const auto* m = env->payload_as_Payment();
      return Payment{m->order_id(),
                     m->user_id(),
                     m->amount(),
                     static_cast<PaymentType>(CheckedEnum(m->payment(), 2, "payment type")),
                     m->ok(),
                     Str(m->detail()),
                     m->at_ms()};
    }
    case w::Payload::Notification: {
      const auto* m = env->payload_as_Notification();
      return Notification{m->order_id(),
                          m->user_id(),
                          static_cast<NotificationType>(CheckedEnum(m->channel(), 2, "notification type")),
                          m->ok(),
                          Str(m->detail()),
                          m->at_ms()};
    }
    case w::Payload::OrderRecord: {
      const auto* m = env->payload_as_OrderRecord();
      return OrderRecord{ReadOrder(m->order(), "OrderRecord"), ReadStatus(m->status()), Str(m->detail()),
                         ReadSteps(m->steps()),  m->accepted_at_ms(), m->finished_at_ms(),
                         Str(m->idempotency_key())};
    }
    case w::Payload::DeadLetter: {
      const auto* m = env->payload_as_DeadLetter();
      DeadLetter out{Str(m->reason()), Str(m->source_topic()), m->source_partition(), m->source_offset(),
                     Str(m->source_key()), "", Str(m->service())};
      if (m->original() != nullptr) out.original.assign(m->original()->begin(), m->original()->end());
      return out;
    }
    case w::Payload::SagaState: {
      const auto* m = env->payload_as_SagaState();
      SagaState out;
      out.order_id = m->order_id();
      out.order = ReadOrder(m->order(), "SagaState");
      out.phase = static_cast<SagaPhase>(CheckedEnum(m->phase(), 3, "saga phase"));
      if (m->pending() != nullptr) {
        out.pending = PendingRequest{ReadStep(m->pending()->step()), m->pending()->attempt(),
                                     m->pending()->deadline_ms()};
      }
      auto steps = [](const flatbuffers::Vector<w::Step>* in) {
        std::vector<Step> v;
        if (in != nullptr) {
          for (auto s : *in) v.push_back(ReadStep(s));
        }
        return v;
      };
      out.succeeded = steps(m->succeeded());
      out.to_compensate = steps(m->to_compensate());
      out.failure = Str(m->failure());
      if (m->notes() != nullptr) {
        for (const auto* n : *m->notes()) out.notes.push_back(Str(n));
      }
      out.history = ReadSteps(m->history());
      out.status = ReadStatus(m->status());
      out.detail = Str(m->detail());
      out.started_at_ms = m->started_at_ms();
      out.ended_at_ms = m->ended_at_ms();
      out.version = m->version();
      if (m->legs() != nullptr) {
        for (const auto* l : *m->legs()) {
          out.legs.push_back(LegRecord{ReadStep(l->step()), l->leg(),
                                       static_cast<LegStatus>(CheckedEnum(l->status(), 2, "leg status"))});
        }
      }
      return out;
    }
    case w::Payload::Restock: {
      const auto* m = env->payload_as_Restock();
      return Restock{m->item_id(), m->quantity(), Str(m->idempotency_key()), m->request_hash()};
    }
    default:
      break;
  }
  throw DecodeError{"unknown payload type " + std::to_string(static_cast<int>(type)) +
                    " (written by a newer schema?)"};
}

}  // namespace

std::string Encode(const Message& message) {
  Builder b(256);
  PayloadWriter writer{b};
  auto payload = std::visit(writer, message.payload);
  auto message_id = b.CreateString(message.message_id);
  auto causation_id = b.CreateString(message.causation_id);
  auto env = w::CreateEnvelope(b, message_id, message.saga_id, causation_id, message.produced_at_ms,
                               message.schema_version, writer.type, payload, message.events_watermark);
  w::FinishEnvelopeBuffer(b, env);
  return std::string(reinterpret_cast<const char*>(b.GetBufferPointer()), b.GetSize());
}

Result<Message> Decode(std::string_view bytes) {
  if (bytes.size() < 8) {
    return Error{Errc::kCorrupt, "record of " + std::to_string(bytes.size()) + " bytes is too short to be an envelope"};
  }
  const auto* data = reinterpret_cast<const uint8_t*>(bytes.data());
  // FlatBuffers reads scalars in place, so a buffer must start at an address
  // aligned for the largest of them (8 bytes); a view into a Kafka fetch
  // buffer or a file need not be. Such a record is read from an aligned copy.
  std::vector<uint64_t> aligned;
  if (reinterpret_cast<uintptr_t>(data) % alignof(uint64_t) != 0) {
    aligned.resize((bytes.size() + sizeof(uint64_t) - 1) / sizeof(uint64_t));
    std::memcpy(aligned.data(), bytes.data(), bytes.size());
    data = reinterpret_cast<const uint8_t*>(aligned.data());
  }
  if (!w::EnvelopeBufferHasIdentifier(data)) {
    return Error{Errc::kCorrupt, "record is not a sagaflow envelope (file identifier is not SGF1)"};
  }
  flatbuffers::Verifier verifier(data, bytes.size());
  if (!w::VerifyEnvelopeBuffer(verifier)) {
    return Error{Errc::kCorrupt, "envelope fails FlatBuffers verification (truncated or corrupt)"};
  }
  const auto* env = w::GetEnvelope(data);
  try {
    Message out;
    out.message_id = Str(env->message_id());
    out.saga_id = env->saga_id();
    out.causation_id = Str(env->causation_id());
    out.produced_at_ms = env->produced_at_ms();
    out.schema_version = env->schema_version();
    out.payload = ReadPayload(env);
    out.events_watermark = env->events_watermark();
    return out;
  } catch (const DecodeError& e) {
    return Error{Errc::kCorrupt, e.message};
  }
}

std::string_view PayloadName(const Payload& payload) {
  static constexpr std::string_view kNames[] = {"OrderPlaced", "StepCommand", "StepReply",    "FinalStatus",
                                                "SagaEvent",   "StockLevel",  "Reservation",  "Payment",
                                                "Notification", "OrderRecord", "DeadLetter",  "SagaState",
                                                "Restock",     "SagaEvents"};
  static_assert(std::size(kNames) == std::variant_size_v<Payload>);
  return kNames[payload.index()];
}

}  // namespace sagaflow::core
