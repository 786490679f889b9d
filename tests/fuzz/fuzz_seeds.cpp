// Writes the generated seed files of the fuzz corpora: valid envelopes made
// by core::Encode and the reference order. Usage: fuzz_seeds CORPUS_DIR
// (tests/fuzz/corpus). Hand-written malformed seeds live next to them.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "sagaflow/core/codec.hpp"
#include "sagaflow/core/topics.hpp"
#include "support/test_system.hpp"

namespace {

using namespace sagaflow;

core::Order SeedOrder(core::OrderId id) {
  core::Order o;
  o.order_id = id;
  o.user_id = 2;
  o.payment = core::PaymentType::kCard;
  o.notification = core::NotificationType::kEmail;
  o.created_at = "2023-11-01T16:35:39.645580261+03:00";
  o.sum = 100;
  o.items = {core::Item{10, 2, 45}, core::Item{15, 1, 10}};
  return o;
}

core::Message Envelope(core::OrderId saga, core::Payload payload) {
  core::Message m;
  m.message_id = "seed-" + std::to_string(saga);
  m.saga_id = saga;
  m.causation_id = "seed-cause";
  m.produced_at_ms = 1'700'000'000'000;
  m.payload = std::move(payload);
  return m;
}

void Write(const std::filesystem::path& dir, const std::string& name, const std::string& bytes) {
  std::filesystem::create_directories(dir);
  std::ofstream(dir / name, std::ios::binary) << bytes;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: fuzz_seeds CORPUS_DIR (tests/fuzz/corpus)\n");
    return 2;
  }
  const std::filesystem::path corpus = argv[1];
  const auto order = SeedOrder(42);
  const core::Message messages[] = {
      Envelope(42, core::OrderPlaced{order}),
      Envelope(42, core::StepCommand{core::Step::kReserveStock, 1, order}),
      Envelope(42, core::StepCommand{core::Step::kReleaseStock, 2, order}),
      Envelope(42, core::StepCommand{core::Step::kCharge, 1, order}),
      Envelope(42, core::StepCommand{core::Step::kNotify, 3, order}),
      Envelope(42, core::StepReply{core::Step::kCharge, 1, false, "insufficient funds"}),
      Envelope(42, core::FinalStatus{core::OrderStatus::kOk, "all steps succeeded", {}}),
      Envelope(42, core::SagaEvent{1, core::StepRequested{core::Step::kNotify, 1, 1'700'000'030'000}}),
      Envelope(0, core::DeadLetter{"not an envelope", "orders.service.order", 1, 7, "42", "garbage", "orchestrator"}),
      Envelope(42, core::SagaEvents{{core::SagaEvent{2, core::StepReplied{core::Step::kCharge, 1, true, "charged"}},
                                     core::SagaEvent{2, core::StepRequested{core::Step::kNotify, 1, 9'000}}}}),
  };
  const char* names[] = {"order_placed", "reserve",    "release",     "charge",     "notify",
                         "reply",        "final_status", "saga_event", "dead_letter", "saga_events"};
  int i = 0;
  for (const auto& m : messages) {
    const auto bytes = core::Encode(m);
    Write(corpus / "decode" / "seeds", names[i], bytes);
    // participant_record: selector 3 (all participants), key from the saga id.
    Write(corpus / "participant_record" / "seeds", names[i], std::string(1, '\x03') + bytes);
    ++i;
  }
  // Malformed envelopes: cut short, and bytes that are no FlatBuffer at all.
  const auto reserve = core::Encode(messages[1]);
  Write(corpus / "decode" / "seeds", "reserve_truncated", reserve.substr(0, reserve.size() / 2));
  Write(corpus / "decode" / "seeds", "not_flatbuffers", "{\"order_id\": 42}");
  // A command whose key is not its saga id: selector 4 + 3, key "7".
  Write(corpus / "participant_record" / "seeds", "reserve_wrong_key",
        std::string("\x07\x01" "7", 3) + core::Encode(messages[1]));
  // What the participants must refuse: a negative quantity, a command for another saga.
  auto negative = order;
  negative.items[0].quantity = -1;
  Write(corpus / "participant_record" / "seeds", "reserve_negative_quantity",
        std::string(1, '\x00') + core::Encode(Envelope(42, core::StepCommand{core::Step::kReserveStock, 1, negative})));
  Write(corpus / "participant_record" / "seeds", "charge_other_saga",
        std::string(1, '\x01') + core::Encode(Envelope(43, core::StepCommand{core::Step::kCharge, 1, order})));
  // A restock with an Idempotency-Key, and a stock level holding applied keys.
  Write(corpus / "decode" / "seeds", "restock_keyed",
        core::Encode(Envelope(0, core::Restock{10, 5, "restock-1", 0x0123456789abcdefULL})));
  Write(corpus / "decode" / "seeds", "stock_level_keys",
        core::Encode(Envelope(0, core::StockLevel{10, 100, 2, {{"restock-1", 0x0123456789abcdefULL, 1'700'000'000'000}}})));
  Write(corpus / "order_json" / "seeds", "reference_order", sagaflow::testing::ReferenceOrder().dump());
  std::printf("wrote the generated seeds under %s\n", corpus.c_str());
  return 0;
}
