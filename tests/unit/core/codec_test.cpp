#include "sagaflow/core/codec.hpp"

#include <flatbuffers/flatbuffers.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "sagaflow/schemas/sagaflow_generated.h"

namespace sagaflow::core {
namespace {

namespace w = sagaflow::wire;

Order SampleOrder() {
  Order o;
  o.order_id = 4242;
  o.user_id = 2;
  o.payment = PaymentType::kSbp;
  o.notification = NotificationType::kSms;
  o.created_at = "2023-11-01T16:35:39.645580261+03:00";
  o.approved_at = "2023-11-01T16:35:39.645580311+03:00";
  o.sum = 10000;
  o.items = {Item{10, 2, 45}, Item{15, 1, 10}, Item{-7, 1'000'000, INT64_MAX}};
  return o;
}

std::vector<StepRecord> SampleSteps() {
  return {StepRecord{Step::kReserveStock, 1, true, 1'700'000'000'123, "reserved 3 items"},
          StepRecord{Step::kCharge, 2, false, 1'700'000'000'456, "insufficient funds"},
          StepRecord{Step::kReleaseStock, 1, true, 1'700'000'000'789, ""},
          StepRecord{Step::kReserveStock, 2, true, 1'700'000'000'999, "reserved 2 of item 15", 15}};
}

// Every envelope field set to a non-default value.
Message Envelope(Payload payload) {
  Message m;
  m.message_id = "msg-0123456789abcdef";
  m.saga_id = 4242;
  m.causation_id = "cause-fedcba9876543210";
  m.produced_at_ms = 1'698'845'739'645;
  m.schema_version = 7;
  m.payload = std::move(payload);
  return m;
}

// One payload of every alternative, SagaEvent once per body type.
std::vector<Payload> AllPayloads() {
  std::string binary("\x00\x01SGF1\xff\x00tail\x00", 13);
  return {
      OrderPlaced{SampleOrder()},
      StepCommand{Step::kCharge, 3, SampleOrder()},
      StepReply{Step::kNotify, 2, true, "sent by SMS"},
      FinalStatus{OrderStatus::kNotOk, "payment declined", SampleSteps()},
      SagaEvent{1'000, SagaStarted{SampleOrder()}},
      SagaEvent{2'000, StepRequested{Step::kReserveStock, 4, 1'700'000'030'000}},
      SagaEvent{3'000, StepReplied{Step::kCharge, 1, false, "card expired"}},
      SagaEvent{4'000, StepTimedOut{Step::kNotify, 5}},
      SagaEvent{3'500, StepReplied{Step::kCharge, 2, false, "declined", StepOutcome::kCompensate,
                                   {Step::kReleaseStock, Step::kReleaseStock}}},
      SagaEvent{4'500, StepTimedOut{Step::kReserveStock, 3, StepOutcome::kNoted, {}}},
      SagaEvent{5'000, SagaEnded{OrderStatus::kCanceled, "compensated"}},
      StockLevel{15, 100, -3},
      StockLevel{15, 100, 0, {AppliedRestock{"restock-1", 0xfedcba9876543210ULL, 1'700'000'000'000}, AppliedRestock{}}},
      Reservation{4242, ReservationState::kReleased, {Item{10, 2, 45}, Item{15, 1, 10}}, true, "released", 9'000,
                  true},
      Payment{4242, 2, 10000, PaymentType::kCard, true, "charged", 10'000},
      Notification{4242, 2, NotificationType::kEmail, false, "mailbox full", 11'000},
      OrderRecord{SampleOrder(), OrderStatus::kOk, "all steps succeeded", SampleSteps(), 12'000, 13'000,
                  "idem-key-1"},
      DeadLetter{"record is not a sagaflow envelope", "orders.service.order", 3, 987'654'321, "4242", binary,
                 "orchestrator"},
      SagaState{4242,
                SampleOrder(),
                SagaPhase::kCompensating,
                PendingRequest{Step::kReleaseStock, 2, 14'000},
                {Step::kReserveStock},
                {Step::kReleaseStock},
                "charge failed: declined",
                {"notify failed: mailbox full", "second note"},
                SampleSteps(),
                OrderStatus::kProcess,
                "",
                1'000,
                0,
                7},
      // The fan-out's fields (added at the end: the indices above stay).
      StepCommand{Step::kReserveStock, 2, SampleOrder(), 15},
      StepReply{Step::kReleaseStock, 1, true, "released", 0},
      SagaEvent{6'000, StepRequested{Step::kReleaseStock, 1, 1'700'000'040'000, {10, 15, 0}}},
      SagaEvent{6'500, StepReplied{Step::kReserveStock, 1, true, "reserved", StepOutcome::kLegAnswered, {}, 10}},
      Reservation{4242, ReservationState::kReserved, {Item{15, 1, 10}}, true, "reserved", 9'500, false, 15},
      SagaState{.order_id = 4242,
                .order = SampleOrder(),
                .phase = SagaPhase::kForward,
                .pending = PendingRequest{Step::kReserveStock, 1, 14'000},
                .status = OrderStatus::kProcess,
                .version = 3,
                .legs = {LegRecord{Step::kReserveStock, 10, LegStatus::kSucceeded},
                         LegRecord{Step::kReserveStock, 15, LegStatus::kAwaited},
                         LegRecord{Step::kReleaseStock, 0, LegStatus::kFailed}}},
      Restock{15, 1'000'000'000'000},
      Restock{15, 7, "restock-1", 0xfedcba9876543210ULL},
      // A decision's events in one record.
      SagaEvents{{SagaEvent{7'000, StepReplied{Step::kCharge, 1, true, "charged", StepOutcome::kSucceeded, {}}},
                  SagaEvent{7'000, StepRequested{Step::kNotify, 1, 1'700'000'050'000}}}},
      SagaEvents{{SagaEvent{8'000, SagaEnded{OrderStatus::kOk, ""}}}},
  };
}

std::string ValidBuffer() { return Encode(Envelope(AllPayloads()[13])); }  // OrderRecord: nested tables and vectors

std::string Finish(flatbuffers::FlatBufferBuilder& b, flatbuffers::Offset<w::Envelope> env) {
  w::FinishEnvelopeBuffer(b, env);
  return std::string(reinterpret_cast<const char*>(b.GetBufferPointer()), b.GetSize());
}

// Builds an envelope around a hand-made payload table.
template <class MakePayload>
std::string RawEnvelope(w::Payload type, MakePayload make_payload) {
  flatbuffers::FlatBufferBuilder b;
  flatbuffers::Offset<void> payload = make_payload(b);
  return Finish(b, w::CreateEnvelopeDirect(b, "m-1", 42, "c-1", 1'000, 1, type, payload));
}

flatbuffers::Offset<w::Order> RawOrder(flatbuffers::FlatBufferBuilder& b) {
  std::vector<w::Item> items{w::Item(10, 2, 45)};
  return w::CreateOrderDirect(b, 42, 2, w::PaymentType::Card, w::NotificationType::Email, "", "", 90, &items);
}

// Decodes bytes that must be rejected and returns the error message.
std::string DecodeError(const std::string& bytes) {
  auto r = Decode(bytes);
  if (r.ok()) {
    ADD_FAILURE() << "decoded a " << PayloadName(r->payload) << " from bytes that must be rejected";
    return "";
  }
  EXPECT_EQ(r.error().code, Errc::kCorrupt);
  EXPECT_FALSE(r.error().retryable);
  return r.error().message;
}

TEST(Codec, RoundTripsEveryPayloadAlternativeWithAllEnvelopeFields) {
  const auto payloads = AllPayloads();
  std::vector<bool> seen(std::variant_size_v<Payload>, false);
  for (const auto& payload : payloads) {
    SCOPED_TRACE(std::string(PayloadName(payload)));
    seen[payload.index()] = true;
    const Message in = Envelope(payload);
    auto out = Decode(Encode(in));
    ASSERT_TRUE(out.ok()) << out.error().message;
    EXPECT_EQ(*out, in);
    EXPECT_EQ(out->payload.index(), payload.index());
  }
  for (size_t i = 0; i < seen.size(); ++i) EXPECT_TRUE(seen[i]) << "payload alternative " << i << " not covered";
}

TEST(Codec, RoundTripsEverySagaEventBodyType) {
  std::vector<bool> seen(std::variant_size_v<SagaEventBody>, false);
  for (const auto& payload : AllPayloads()) {
    if (const auto* e = std::get_if<SagaEvent>(&payload)) {
      seen[e->body.index()] = true;
      auto out = Decode(Encode(Envelope(payload)));
      ASSERT_TRUE(out.ok()) << out.error().message;
      ASSERT_TRUE(std::holds_alternative<SagaEvent>(out->payload));
      EXPECT_EQ(std::get<SagaEvent>(out->payload).body.index(), e->body.index());
      EXPECT_EQ(std::get<SagaEvent>(out->payload), *e);
    }
  }
  for (size_t i = 0; i < seen.size(); ++i) EXPECT_TRUE(seen[i]) << "saga event body " << i << " not covered";
}

TEST(Codec, RoundTripsDefaultValuedMessage) {
  const Message in;  // empty strings, zero ids, default OrderPlaced with no items
  auto out = Decode(Encode(in));
  ASSERT_TRUE(out.ok()) << out.error().message;
  EXPECT_EQ(*out, in);
}

TEST(Codec, KeepsBinaryDeadLetterOriginalIncludingNulBytes) {
  std::string original;
  for (int i = 0; i < 256; ++i) original.push_back(static_cast<char>(i));
  original += std::string("\0\0\0", 3);
  const Message in = Envelope(DeadLetter{"bad", "t", 0, 0, "k", original, "svc"});
  auto out = Decode(Encode(in));
  ASSERT_TRUE(out.ok()) << out.error().message;
  const auto& dl = std::get<DeadLetter>(out->payload);
  EXPECT_EQ(dl.original.size(), original.size());
  EXPECT_EQ(dl.original, original);
}

TEST(Codec, KeepsBinaryDeadLetterSourceKeyIncludingNulBytes) {
  // The source key is copied from a record that could not be handled: it can be any bytes.
  const std::string key("\x00\x00\x00\x00\x00\x00\x10\x92", 8);
  const Message in = Envelope(DeadLetter{"bad", "t", 0, 0, key, "v", "svc"});
  auto out = Decode(Encode(in));
  ASSERT_TRUE(out.ok()) << out.error().message;
  EXPECT_EQ(std::get<DeadLetter>(out->payload).source_key, key);
}

TEST(Codec, RejectsEmptyInput) {
  EXPECT_EQ(DecodeError(""), "record of 0 bytes is too short to be an envelope");
}

TEST(Codec, RejectsRandomGarbage) {
  for (uint32_t seed : {1u, 2u, 3u, 42u, 1234u, 99991u}) {
    std::mt19937 rng(seed);
    for (int round = 0; round < 50; ++round) {
      const size_t size = std::uniform_int_distribution<size_t>(0, 512)(rng);
      std::string bytes(size, '\0');
      for (auto& c : bytes) c = static_cast<char>(rng() & 0xff);
      SCOPED_TRACE("seed " + std::to_string(seed) + " round " + std::to_string(round));
      EXPECT_FALSE(DecodeError(bytes).empty());
    }
  }
}

TEST(Codec, RejectsGarbageCarryingTheRightFileIdentifier) {
  // Gets past the identifier check, so the verifier itself must reject it.
  for (uint32_t seed : {7u, 8u, 9u, 10u}) {
    std::mt19937 rng(seed);
    for (int round = 0; round < 50; ++round) {
      const size_t size = std::uniform_int_distribution<size_t>(8, 256)(rng);
      std::string bytes(size, '\0');
      for (auto& c : bytes) c = static_cast<char>(rng() & 0xff);
      bytes.replace(4, 4, "SGF1");
      SCOPED_TRACE("seed " + std::to_string(seed) + " round " + std::to_string(round));
      EXPECT_NE(DecodeError(bytes).find("FlatBuffers verification"), std::string::npos);
    }
  }
}

// Bytes at the end of a buffer that nothing references (alignment padding of
// the first object the builder wrote). Cutting them loses nothing.
size_t TrailingPadding(const std::string& valid) {
  size_t padding = 0;
  while (padding < valid.size()) {
    auto r = Decode(std::string_view(valid).substr(0, valid.size() - padding - 1));
    if (!r.ok()) break;
    ++padding;
  }
  return padding;
}

TEST(Codec, RejectsEveryTruncation) {
  for (const auto& payload : AllPayloads()) {
    SCOPED_TRACE(std::string(PayloadName(payload)));
    const Message in = Envelope(payload);
    const std::string valid = Encode(in);
    // FlatBuffers has no length field, so only cutting unreferenced trailing
    // padding can go unnoticed; it must then decode to the very same message.
    const size_t padding = TrailingPadding(valid);
    ASSERT_LT(padding, 8u) << "more than alignment padding can be cut from " << valid.size() << " bytes";
    for (size_t len = valid.size() - padding; len < valid.size(); ++len) {
      auto r = Decode(std::string_view(valid).substr(0, len));
      ASSERT_TRUE(r.ok());
      EXPECT_EQ(*r, in);
    }
    for (size_t len = 0; len < valid.size() - padding; ++len) {
      auto r = Decode(std::string_view(valid).substr(0, len));
      ASSERT_FALSE(r.ok()) << "prefix of " << len << " of " << valid.size() << " bytes decoded";
      EXPECT_EQ(r.error().code, Errc::kCorrupt);
    }
  }
}

TEST(Codec, RejectsEveryStrictPrefixOfBufferWithoutPadding) {
  // A DeadLetter whose first-written string fills its 4-byte slot exactly
  // leaves no trailing padding: then every strict prefix must fail.
  const Message in = Envelope(DeadLetter{"bad", "t", 1, 2, "k", "orig", "abc"});
  const std::string valid = Encode(in);
  ASSERT_EQ(TrailingPadding(valid), 0u);
  for (size_t len = 0; len < valid.size(); ++len) {
    auto r = Decode(std::string_view(valid).substr(0, len));
    ASSERT_FALSE(r.ok()) << "prefix of " << len << " of " << valid.size() << " bytes decoded";
    EXPECT_EQ(r.error().code, Errc::kCorrupt);
  }
}

TEST(Codec, TruncatedBufferErrorSaysWhy) {
  const std::string valid = ValidBuffer();
  EXPECT_EQ(DecodeError(valid.substr(0, 7)), "record of 7 bytes is too short to be an envelope");
  EXPECT_EQ(DecodeError(valid.substr(0, valid.size() / 2)),
            "envelope fails FlatBuffers verification (truncated or corrupt)");
}

TEST(Codec, RejectsWrongFileIdentifier) {
  std::string bytes = ValidBuffer();
  ASSERT_EQ(bytes.substr(4, 4), "SGF1");
  bytes.replace(4, 4, "SGF2");
  EXPECT_NE(DecodeError(bytes).find("file identifier is not SGF1"), std::string::npos);
}

TEST(Codec, SurvivesCorruptionAtEveryByte) {
  // Flipped bytes may still decode (a changed number is still a number) or
  // must fail cleanly with kCorrupt; they must never crash or throw.
  std::vector<std::string> buffers;
  for (const auto& payload : AllPayloads()) buffers.push_back(Encode(Envelope(payload)));
  int decoded = 0;
  int rejected = 0;
  for (const auto& valid : buffers) {
    for (size_t pos = 0; pos < valid.size(); ++pos) {
      const auto original = static_cast<uint8_t>(valid[pos]);
      for (uint8_t mutated : {static_cast<uint8_t>(original ^ 0xff), static_cast<uint8_t>(original ^ 0x01),
                              static_cast<uint8_t>(original ^ 0x80), uint8_t{0x00}, uint8_t{0xff}}) {
        if (mutated == original) continue;
        std::string bytes = valid;
        bytes[pos] = static_cast<char>(mutated);
        auto r = Decode(bytes);
        if (r.ok()) {
          ++decoded;
          (void)Encode(*r);  // whatever decoded is a well-formed message
        } else {
          ++rejected;
          EXPECT_EQ(r.error().code, Errc::kCorrupt) << "byte " << pos;
          EXPECT_FALSE(r.error().message.empty());
        }
      }
    }
  }
  // Both outcomes must occur, or the mutations did not reach the verifier.
  EXPECT_GT(decoded, 0);
  EXPECT_GT(rejected, 0);
}

TEST(Codec, RejectsEnvelopeWithoutPayload) {
  flatbuffers::FlatBufferBuilder b;
  const std::string bytes = Finish(b, w::CreateEnvelopeDirect(b, "m-1", 42, "c-1", 1'000, 1, w::Payload::NONE, 0));
  EXPECT_EQ(DecodeError(bytes), "envelope has no payload");
}

TEST(Codec, RejectsPayloadTypeWithoutItsTable) {
  const std::string bytes =
      RawEnvelope(w::Payload::StockLevel, [](flatbuffers::FlatBufferBuilder&) { return flatbuffers::Offset<void>(); });
  EXPECT_EQ(DecodeError(bytes), "envelope payload is missing its table");
}

TEST(Codec, RejectsUnknownPayloadType) {
  const std::string bytes = RawEnvelope(static_cast<w::Payload>(42), [](flatbuffers::FlatBufferBuilder& b) {
    return w::CreateStockLevel(b, 1, 2, 3).Union();
  });
  const std::string message = DecodeError(bytes);
  EXPECT_NE(message.find("unknown payload type 42"), std::string::npos) << message;
}

TEST(Codec, RejectsStepCommandWithOutOfRangeStep) {
  for (int8_t step : {int8_t{5}, int8_t{99}, int8_t{-1}}) {
    const std::string bytes = RawEnvelope(w::Payload::StepCommand, [&](flatbuffers::FlatBufferBuilder& b) {
      auto order = RawOrder(b);
      return w::CreateStepCommand(b, static_cast<w::Step>(step), 1, order).Union();
    });
    EXPECT_EQ(DecodeError(bytes), "unknown step " + std::to_string(step));
  }
}

TEST(Codec, AcceptsHandBuiltStepCommandWithEveryKnownStep) {
  // Guards the rejection test above: the same construction with a valid step decodes.
  for (int8_t step = 0; step <= 4; ++step) {
    const std::string bytes = RawEnvelope(w::Payload::StepCommand, [&](flatbuffers::FlatBufferBuilder& b) {
      auto order = RawOrder(b);
      return w::CreateStepCommand(b, static_cast<w::Step>(step), 1, order).Union();
    });
    auto r = Decode(bytes);
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(std::get<StepCommand>(r->payload).step, static_cast<Step>(step));
    EXPECT_EQ(std::get<StepCommand>(r->payload).order.items, (std::vector<Item>{Item{10, 2, 45}}));
  }
}

TEST(Codec, RejectsStepCommandWithoutOrder) {
  const std::string bytes = RawEnvelope(w::Payload::StepCommand, [](flatbuffers::FlatBufferBuilder& b) {
    return w::CreateStepCommand(b, w::Step::Charge, 1, 0).Union();
  });
  EXPECT_EQ(DecodeError(bytes), "StepCommand has no order");
}

TEST(Codec, RejectsOrderWithOutOfRangePaymentType) {
  const std::string bytes = RawEnvelope(w::Payload::OrderPlaced, [](flatbuffers::FlatBufferBuilder& b) {
    auto order = w::CreateOrderDirect(b, 1, 2, static_cast<w::PaymentType>(3), w::NotificationType::Sms);
    return w::CreateOrderPlaced(b, order).Union();
  });
  EXPECT_EQ(DecodeError(bytes), "unknown payment type 3");
}

TEST(Codec, RejectsFinalStatusStepRecordWithOutOfRangeStep) {
  const std::string bytes = RawEnvelope(w::Payload::FinalStatus, [](flatbuffers::FlatBufferBuilder& b) {
    std::vector<flatbuffers::Offset<w::StepRecord>> steps{
        w::CreateStepRecordDirect(b, static_cast<w::Step>(17), 1, true, 5, "x")};
    return w::CreateFinalStatusDirect(b, w::OrderStatus::Ok, "d", &steps).Union();
  });
  EXPECT_EQ(DecodeError(bytes), "unknown step 17");
}

TEST(Codec, RejectsUnknownSagaEventBodyType) {
  const std::string bytes = RawEnvelope(w::Payload::SagaEvent, [](flatbuffers::FlatBufferBuilder& b) {
    auto body = w::CreateStepTimedOut(b, w::Step::Charge, 1).Union();
    return w::CreateSagaEvent(b, 5, static_cast<w::SagaEventBody>(9), body).Union();
  });
  EXPECT_NE(DecodeError(bytes).find("SagaEvent has unknown body type 9"), std::string::npos);
}

TEST(Codec, ReadsAReplyAndATimeoutWrittenBeforeOutcomesAsUnrecorded) {
  // Schema version 1 wrote StepReplied and StepTimedOut without the outcome fields.
  const std::string reply = RawEnvelope(w::Payload::SagaEvent, [](flatbuffers::FlatBufferBuilder& b) {
    auto detail = b.CreateString("declined");
    w::StepRepliedBuilder body(b);
    body.add_step(w::Step::Charge);
    body.add_attempt(1);
    body.add_ok(false);
    body.add_detail(detail);
    return w::CreateSagaEvent(b, 5, w::SagaEventBody::StepReplied, body.Finish().Union()).Union();
  });
  auto decoded = Decode(reply);
  ASSERT_TRUE(decoded.ok()) << decoded.error().message;
  EXPECT_EQ(std::get<SagaEvent>(decoded->payload).body,
            (SagaEventBody{StepReplied{Step::kCharge, 1, false, "declined", StepOutcome::kUnrecorded, {}}}));

  const std::string timeout = RawEnvelope(w::Payload::SagaEvent, [](flatbuffers::FlatBufferBuilder& b) {
    w::StepTimedOutBuilder body(b);
    body.add_step(w::Step::ReserveStock);
    body.add_attempt(3);
    return w::CreateSagaEvent(b, 5, w::SagaEventBody::StepTimedOut, body.Finish().Union()).Union();
  });
  decoded = Decode(timeout);
  ASSERT_TRUE(decoded.ok()) << decoded.error().message;
  EXPECT_EQ(std::get<SagaEvent>(decoded->payload).body,
            (SagaEventBody{StepTimedOut{Step::kReserveStock, 3, StepOutcome::kUnrecorded, {}}}));
}

TEST(Codec, RejectsAnUnknownStepOutcome) {
  const std::string bytes = RawEnvelope(w::Payload::SagaEvent, [](flatbuffers::FlatBufferBuilder& b) {
    auto body = w::CreateStepTimedOut(b, w::Step::Charge, 1, static_cast<w::StepOutcome>(9)).Union();
    return w::CreateSagaEvent(b, 5, w::SagaEventBody::StepTimedOut, body).Union();
  });
  EXPECT_EQ(DecodeError(bytes), "unknown step outcome 9");
}

TEST(Codec, RejectsSagaEventBodyTypeWithoutItsTable) {
  // The verifier accepts a union whose type is set but whose table is absent.
  for (auto type : {w::SagaEventBody::SagaStarted, w::SagaEventBody::StepRequested, w::SagaEventBody::StepReplied,
                    w::SagaEventBody::StepTimedOut, w::SagaEventBody::SagaEnded}) {
    SCOPED_TRACE(static_cast<int>(type));
    const std::string bytes = RawEnvelope(w::Payload::SagaEvent, [&](flatbuffers::FlatBufferBuilder& b) {
      return w::CreateSagaEvent(b, 5, type, 0).Union();
    });
    EXPECT_EQ(DecodeError(bytes), "SagaEvent body is missing its table");
  }
}

TEST(Codec, RejectsSagaEventWithoutBody) {
  const std::string bytes = RawEnvelope(w::Payload::SagaEvent, [](flatbuffers::FlatBufferBuilder& b) {
    return w::CreateSagaEvent(b, 5, w::SagaEventBody::NONE, 0).Union();
  });
  EXPECT_EQ(DecodeError(bytes), "SagaEvent has no body");
}

TEST(Codec, PayloadNameNamesEachAlternative) {
  static_assert(std::variant_size_v<Payload> == 14, "name every new alternative below");
  EXPECT_EQ(PayloadName(OrderPlaced{}), "OrderPlaced");
  EXPECT_EQ(PayloadName(StepCommand{}), "StepCommand");
  EXPECT_EQ(PayloadName(StepReply{}), "StepReply");
  EXPECT_EQ(PayloadName(FinalStatus{}), "FinalStatus");
  EXPECT_EQ(PayloadName(SagaEvent{}), "SagaEvent");
  EXPECT_EQ(PayloadName(StockLevel{}), "StockLevel");
  EXPECT_EQ(PayloadName(Reservation{}), "Reservation");
  EXPECT_EQ(PayloadName(Payment{}), "Payment");
  EXPECT_EQ(PayloadName(Notification{}), "Notification");
  EXPECT_EQ(PayloadName(OrderRecord{}), "OrderRecord");
  EXPECT_EQ(PayloadName(DeadLetter{}), "DeadLetter");
  EXPECT_EQ(PayloadName(SagaState{}), "SagaState");
  EXPECT_EQ(PayloadName(Restock{}), "Restock");
  EXPECT_EQ(PayloadName(SagaEvents{}), "SagaEvents");
}

TEST(Codec, RejectsSagaEventsWithoutEvents) {
  const std::string absent = RawEnvelope(w::Payload::SagaEvents, [](flatbuffers::FlatBufferBuilder& b) {
    return w::CreateSagaEvents(b).Union();
  });
  EXPECT_EQ(DecodeError(absent), "SagaEvents has no events");
  const std::string empty = RawEnvelope(w::Payload::SagaEvents, [](flatbuffers::FlatBufferBuilder& b) {
    std::vector<flatbuffers::Offset<w::SagaEvent>> none;
    return w::CreateSagaEventsDirect(b, &none).Union();
  });
  EXPECT_EQ(DecodeError(empty), "SagaEvents has no events");
}

TEST(Codec, RejectsSagaEventsWithABadEvent) {
  const std::string bytes = RawEnvelope(w::Payload::SagaEvents, [](flatbuffers::FlatBufferBuilder& b) {
    std::vector<flatbuffers::Offset<w::SagaEvent>> events{
        w::CreateSagaEvent(b, 5, w::SagaEventBody::SagaEnded, w::CreateSagaEndedDirect(b, w::OrderStatus::Ok).Union()),
        w::CreateSagaEvent(b, 6, w::SagaEventBody::NONE, 0)};
    return w::CreateSagaEventsDirect(b, &events).Union();
  });
  EXPECT_EQ(DecodeError(bytes), "SagaEvent has no body");
}

TEST(Codec, SagaEventsOfGivesTheEventsARecordCarries) {
  const SagaEvent one{1'000, SagaEnded{OrderStatus::kOk, ""}};
  const SagaEvent two{2'000, StepRequested{Step::kNotify, 1, 9'000}};
  const Payload single = one;
  ASSERT_EQ(SagaEventsOf(single).size(), 1u);
  EXPECT_EQ(SagaEventsOf(single)[0], one);
  const Payload batch = SagaEvents{{one, two}};
  ASSERT_EQ(SagaEventsOf(batch).size(), 2u);
  EXPECT_EQ(SagaEventsOf(batch)[0], one);
  EXPECT_EQ(SagaEventsOf(batch)[1], two);
  EXPECT_TRUE(SagaEventsOf(Payload{StepReply{}}).empty());
}

TEST(Codec, ReadsCommandsRepliesAndReservationsWrittenBeforeFanOutAsHavingNoLeg) {
  const std::string command = RawEnvelope(w::Payload::StepCommand, [](flatbuffers::FlatBufferBuilder& b) {
    auto order = RawOrder(b);
    w::StepCommandBuilder body(b);
    body.add_step(w::Step::ReserveStock);
    body.add_attempt(1);
    body.add_order(order);
    return body.Finish().Union();
  });
  auto decoded = Decode(command);
  ASSERT_TRUE(decoded.ok()) << decoded.error().message;
  EXPECT_EQ(std::get<StepCommand>(decoded->payload).leg, kNoLeg);

  const std::string reservation = RawEnvelope(w::Payload::Reservation, [](flatbuffers::FlatBufferBuilder& b) {
    w::ReservationBuilder body(b);
    body.add_order_id(42);
    body.add_state(w::ReservationState::Reserved);
    return body.Finish().Union();
  });
  decoded = Decode(reservation);
  ASSERT_TRUE(decoded.ok()) << decoded.error().message;
  EXPECT_EQ(std::get<Reservation>(decoded->payload).item_id, kNoLeg);
}

TEST(Codec, RejectsAnUnknownLegStatus) {
  SagaState state;
  state.legs = {LegRecord{Step::kReserveStock, 1, static_cast<LegStatus>(7)}};
  EXPECT_EQ(DecodeError(Encode(Envelope(state))), "unknown leg status 7");
}

TEST(Codec, RoundTripsASagaStateWithoutPendingRequest) {
  SagaState state;
  state.order_id = 7;
  state.order = SampleOrder();
  state.phase = SagaPhase::kEnded;
  state.status = OrderStatus::kOk;
  state.version = 9;
  auto out = Decode(Encode(Envelope(state)));
  ASSERT_TRUE(out.ok()) << out.error().message;
  EXPECT_EQ(std::get<SagaState>(out->payload), state);
  EXPECT_FALSE(std::get<SagaState>(out->payload).pending.has_value());
}

// Found by the fuzz target decode: strings were written with c_str(), so one
// holding a NUL (an HTTP body or a forged record can carry one) came back cut short.
TEST(Codec, RoundTripsStringsThatHoldANul) {
  const std::string nul("a\0b", 3);
  Order order = SampleOrder();
  order.created_at = nul;
  order.approved_at = nul;
  std::vector<Payload> payloads = {
      OrderPlaced{order},
      StepReply{Step::kCharge, 1, false, nul},
      FinalStatus{OrderStatus::kNotOk, nul, {StepRecord{Step::kCharge, 1, false, 5, nul}}},
      SagaEvent{1, SagaEnded{OrderStatus::kNotOk, nul}},
      Payment{42, 2, 100, PaymentType::kCard, false, nul, 7},
      Notification{42, 2, NotificationType::kSms, true, nul, 8},
  };
  for (const auto& payload : payloads) {
    SCOPED_TRACE(std::string(PayloadName(payload)));
    Message in = Envelope(payload);
    in.message_id = nul;
    in.causation_id = nul;
    auto out = Decode(Encode(in));
    ASSERT_TRUE(out.ok()) << out.error().message;
    EXPECT_EQ(*out, in);
  }
}

// Found by the fuzz target participant_record (UBSan: misaligned load): a
// record value need not start at an aligned address (a view into a Kafka
// fetch buffer, or an offset into a larger buffer).
TEST(Codec, DecodesAnEnvelopeThatStartsAtAnUnalignedAddress) {
  const Message in = Envelope(AllPayloads()[13]);
  const std::string bytes = Encode(in);
  for (size_t shift = 1; shift < 8; ++shift) {
    SCOPED_TRACE(shift);
    std::vector<uint64_t> storage(bytes.size() / 8 + 2);
    auto* at = reinterpret_cast<char*>(storage.data()) + shift;
    std::memcpy(at, bytes.data(), bytes.size());
    auto out = Decode(std::string_view(at, bytes.size()));
    ASSERT_TRUE(out.ok()) << out.error().message;
    EXPECT_EQ(*out, in);
  }
}

}  // namespace
}  // namespace sagaflow::core
