#include "sagaflow/replay/replayer.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "sagaflow/core/codec.hpp"
#include "sagaflow/core/saga_aggregate.hpp"
#include "sagaflow/replay/dlq.hpp"
#include "sagaflow/replay/export_file.hpp"
#include "sagaflow/replay/participants.hpp"
#include "sagaflow/replay/replay_command.hpp"
#include "support/temp_dir.hpp"

namespace sagaflow::replay {
namespace {

using core::OrderStatus;
using core::SagaEvent;
using core::Step;

constexpr core::TimeMs kStart = 1'790'000'000'000;

core::Order MakeOrder(core::OrderId id) {
  return core::Order{.order_id = id,
                     .user_id = 7,
                     .payment = core::PaymentType::kCard,
                     .notification = core::NotificationType::kEmail,
                     .created_at = "2026-01-01T00:00:00Z",
                     .approved_at = "",
                     .sum = 300,
                     .items = {core::Item{.item_id = 1, .quantity = 2, .price = 150}}};
}

// Writes a saga's history the way the orchestrator does: Decide, record, Apply.
class History {
 public:
  History(core::OrderId id, core::SagaDefinition def = core::OrderSagaDefinition(),
          std::vector<core::Item> items = {})
      : id_(id), def_(std::move(def)), items_(std::move(items)) {}

  History& Place() {
    core::Order order = MakeOrder(id_);
    if (!items_.empty()) order.items = items_;
    return Feed(core::OrderPlaced{order});
  }
  // For a fanned-out step, its first leg still awaited answers.
  History& Reply(Step step, bool ok, std::string detail = "") {
    core::LegKey leg = core::kNoLeg;
    for (const auto& l : state_.legs) {
      if (l.step == step && l.status == core::LegStatus::kAwaited) {
        leg = l.leg;
        break;
      }
    }
    return ReplyLeg(step, leg, ok, std::move(detail));
  }
  History& ReplyLeg(Step step, core::LegKey leg, bool ok, std::string detail = "") {
    now_ += 100;
    return Feed(core::StepReply{step, state_.pending ? state_.pending->attempt : 1, ok, std::move(detail), leg});
  }
  History& Expire() {
    now_ = state_.pending->deadline_ms;
    return Feed(core::Tick{now_});
  }

  core::OrderId id() const { return id_; }
  const core::SagaState& state() const { return state_; }
  std::vector<SagaEvent>& events() { return events_; }

  // The record values of the history as the orchestrator writes them: one
  // SagaEvents per decision (events added by hand after the last decision
  // share a last record); with `one_per_event`, one SagaEvent per event, as
  // earlier versions wrote. Each with the time of its first event.
  std::vector<std::pair<core::TimeMs, std::string>> Records(bool one_per_event = false) const {
    std::vector<std::pair<core::TimeMs, std::string>> out;
    auto add = [&](size_t from, size_t to) {
      if (from >= to) return;
      const core::Payload payload =
          one_per_event ? core::Payload{events_[from]}
                        : core::Payload{core::SagaEvents{{events_.begin() + from, events_.begin() + to}}};
      out.emplace_back(events_[from].at_ms, core::Encode(core::Message{"m", id_, "", events_[from].at_ms, 1, payload}));
    };
    size_t from = 0;
    for (size_t size : one_per_event ? std::vector<size_t>(events_.size(), 1) : decision_sizes_) {
      const size_t to = std::min(from + size, events_.size());
      add(from, to);
      from = to;
    }
    add(from, events_.size());
    return out;
  }

 private:
  History& Feed(const core::SagaInput& input) {
    const auto decision = core::Decide(def_, state_, input, now_);
    for (const SagaEvent& e : decision.events) {
      state_ = core::Apply(def_, state_, e);
      events_.push_back(e);
    }
    if (!decision.events.empty()) decision_sizes_.push_back(decision.events.size());
    return *this;
  }

  core::OrderId id_;
  core::SagaDefinition def_;
  std::vector<core::Item> items_;
  core::SagaState state_;
  std::vector<SagaEvent> events_;
  std::vector<size_t> decision_sizes_;
  core::TimeMs now_ = kStart;
};

void Feed(Replayer& replayer, History& h, bool one_per_event = false) {
  int64_t offset = 0;
  const std::string key = core::SagaKey(h.id());
  for (const auto& [at_ms, value] : h.Records(one_per_event)) replayer.Add(SourceRecord{0, offset++, at_ms, key, value});
}

std::vector<History> EveryOutcome() {
  std::vector<History> sagas;
  sagas.emplace_back(1);  // OK
  sagas.back().Place().Reply(Step::kReserveStock, true).Reply(Step::kCharge, true).Reply(Step::kNotify, true);
  sagas.emplace_back(2);  // warehouse refuses: NOT OK, nothing to compensate
  sagas.back().Place().Reply(Step::kReserveStock, false, "out of stock");
  sagas.emplace_back(3);  // payment declines: release, NOT OK
  sagas.back().Place().Reply(Step::kReserveStock, true).Reply(Step::kCharge, false, "declined").Reply(
      Step::kReleaseStock, true);
  sagas.emplace_back(4);  // notification fails: still OK, noted
  sagas.back().Place().Reply(Step::kReserveStock, true).Reply(Step::kCharge, true).Reply(Step::kNotify, false, "bounced");
  sagas.emplace_back(5);  // the warehouse answers only the second attempt
  sagas.back().Place().Expire().Reply(Step::kReserveStock, true).Reply(Step::kCharge, true).Reply(Step::kNotify, true);
  sagas.emplace_back(6);  // the warehouse never answers: released after the last attempt
  sagas.back().Place().Expire().Expire().Expire().Reply(Step::kReleaseStock, true);
  sagas.emplace_back(7);  // still running
  sagas.back().Place().Reply(Step::kReserveStock, true);
  return sagas;
}

TEST(Replayer, RebuildsEverySagaAsTheOrchestratorFoldedIt) {
  auto sagas = EveryOutcome();
  Replayer replayer(core::OrderSagaDefinition(), {.verify = true});
  for (auto& h : sagas) Feed(replayer, h);
  replayer.Finish();

  ASSERT_EQ(replayer.Sagas().size(), sagas.size());
  for (auto& h : sagas) {
    SCOPED_TRACE(h.id());
    const SagaReplay* r = replayer.Find(h.id());
    ASSERT_NE(r, nullptr);
    EXPECT_EQ(r->state, h.state());
    EXPECT_FALSE(r->divergence.has_value()) << r->divergence->recorded << " / " << r->divergence->expected;
    EXPECT_TRUE(r->violations.empty());
  }
  EXPECT_EQ(replayer.Find(1)->state.status, OrderStatus::kOk);
  EXPECT_EQ(replayer.Find(2)->state.status, OrderStatus::kNotOk);
  EXPECT_EQ(replayer.Find(3)->compensations, 1);
  EXPECT_EQ(replayer.Find(4)->state.detail, "notify failed: bounced");
  EXPECT_EQ(replayer.Find(5)->timeouts, 1);
  EXPECT_EQ(replayer.Find(5)->retries, 1);
  EXPECT_EQ(replayer.Find(6)->state.detail, "reserve_stock timed out after 3 attempts; compensated: release_stock");
  EXPECT_EQ(replayer.Find(7)->state.phase, core::SagaPhase::kForward);
  EXPECT_EQ(replayer.totals().undecodable, 0);
}

TEST(Replayer, ReadsTheOneRecordPerEventLogOfEarlierVersionsAsTheSameHistory) {
  auto sagas = EveryOutcome();
  Replayer batched(core::OrderSagaDefinition(), {.verify = true});
  Replayer single(core::OrderSagaDefinition(), {.verify = true});
  for (auto& h : sagas) {
    Feed(batched, h);
    Feed(single, h, /*one_per_event=*/true);
  }
  batched.Finish();
  single.Finish();
  int64_t events = 0;
  for (auto& h : sagas) {
    SCOPED_TRACE(h.id());
    events += static_cast<int64_t>(h.events().size());
    for (const Replayer* r : {&batched, &single}) {
      const SagaReplay* saga = r->Find(h.id());
      ASSERT_NE(saga, nullptr);
      EXPECT_EQ(saga->state, h.state());
      EXPECT_EQ(saga->events, static_cast<int64_t>(h.events().size()));
      EXPECT_FALSE(saga->divergence.has_value()) << saga->divergence->recorded << " / " << saga->divergence->expected;
    }
  }
  EXPECT_EQ(batched.totals().events, events);
  EXPECT_EQ(single.totals().events, events);
  EXPECT_EQ(single.totals().records, events);
  // A decision's events share a record: placing an order records two.
  EXPECT_LT(batched.totals().records, events);
  EXPECT_EQ(batched.totals().undecodable, 0);
}

TEST(Replayer, TimelineMarksTheCompensation) {
  auto sagas = EveryOutcome();
  Replayer replayer(core::OrderSagaDefinition(), {.timeline_of = 3});
  for (auto& h : sagas) Feed(replayer, h);
  replayer.Finish();
  const auto& timeline = replayer.Timeline();
  ASSERT_EQ(timeline.size(), sagas[2].events().size());
  std::vector<std::string> compensation;
  for (const auto& entry : timeline) {
    if (entry.compensation) compensation.push_back(Describe(entry.event));
  }
  EXPECT_EQ(compensation, (std::vector<std::string>{"release_stock requested, attempt 1, legs 1, deadline +10.0 s",
                                                    "release_stock leg 1 replied OK (attempt 1)"}));
  EXPECT_EQ(Describe(timeline[4].event),
            "charge replied NOT OK: declined (attempt 1) -> compensate: release_stock");
}

TEST(Replayer, VerifyFindsTheFirstEventWhereHistoryAndCodeDisagree) {
  History h(9);
  h.Place().Reply(Step::kReserveStock, true).Reply(Step::kCharge, false, "declined").Reply(Step::kReleaseStock, true);
  // An older orchestrator ended the saga without releasing the reservation.
  auto& events = h.events();
  const size_t release = 5;  // started, reserve requested, replied, charge requested, replied, release requested
  ASSERT_TRUE(std::holds_alternative<core::StepRequested>(events[release].body));
  events.erase(events.begin() + release, events.end());
  events.push_back(SagaEvent{events.back().at_ms, core::SagaEnded{OrderStatus::kNotOk, "charge failed: declined"}});

  Replayer replayer(core::OrderSagaDefinition(), {.verify = true});
  Feed(replayer, h);
  replayer.Finish();
  const SagaReplay* r = replayer.Find(9);
  ASSERT_TRUE(r->divergence.has_value());
  EXPECT_EQ(r->divergence->index, 5);
  EXPECT_EQ(r->divergence->recorded, "ended NOT OK: charge failed: declined");
  EXPECT_EQ(r->divergence->expected, "release_stock requested, attempt 1, legs 1, deadline +10.0 s");
  EXPECT_EQ(r->violations, std::vector<std::string>{"reserve_stock succeeded but release_stock was never acknowledged"});
}

TEST(Replayer, VerifiesAndChecksSagasWhoseReservationFannedOutPerItem) {
  const std::vector<core::Item> items{{.item_id = 1, .quantity = 2, .price = 100},
                                      {.item_id = 2, .quantity = 1, .price = 100}};
  std::vector<History> sagas;
  // All legs reserved; then one leg fails while the other is reserved; then
  // a payment failure releases both; a late leg reply after compensation began.
  sagas.emplace_back(21, core::OrderSagaDefinition(), items);
  sagas.back().Place().ReplyLeg(Step::kReserveStock, 2, true).ReplyLeg(Step::kReserveStock, 1, true);
  sagas.back().Reply(Step::kCharge, true).Reply(Step::kNotify, true);
  sagas.emplace_back(22, core::OrderSagaDefinition(), items);
  sagas.back().Place().ReplyLeg(Step::kReserveStock, 1, true).ReplyLeg(Step::kReserveStock, 2, false, "short");
  sagas.back().ReplyLeg(Step::kReleaseStock, 1, true);
  sagas.emplace_back(23, core::OrderSagaDefinition(), items);
  sagas.back().Place().ReplyLeg(Step::kReserveStock, 1, true).ReplyLeg(Step::kReserveStock, 2, true);
  sagas.back().Reply(Step::kCharge, false, "declined").ReplyLeg(Step::kReleaseStock, 2, true);
  sagas.back().ReplyLeg(Step::kReleaseStock, 1, true);
  sagas.emplace_back(24, core::OrderSagaDefinition(), items);
  sagas.back().Place().ReplyLeg(Step::kReserveStock, 1, false, "short").ReplyLeg(Step::kReserveStock, 2, true);
  sagas.back().ReplyLeg(Step::kReleaseStock, 2, true);

  Replayer replayer(core::OrderSagaDefinition(), {.verify = true});
  for (auto& h : sagas) Feed(replayer, h);
  replayer.Finish();
  const std::vector<OrderStatus> want{OrderStatus::kOk, OrderStatus::kNotOk, OrderStatus::kNotOk, OrderStatus::kNotOk};
  for (size_t i = 0; i < sagas.size(); ++i) {
    const SagaReplay* r = replayer.Find(sagas[i].id());
    ASSERT_NE(r, nullptr);
    SCOPED_TRACE(r->id);
    EXPECT_FALSE(r->divergence.has_value()) << r->divergence->recorded << " / " << r->divergence->expected;
    EXPECT_TRUE(r->violations.empty()) << ::testing::PrintToString(r->violations);
    EXPECT_EQ(r->state, sagas[i].state());
    EXPECT_EQ(r->state.status, want[i]);
  }

  // The participants' side: a reservation per item.
  ParticipantRecords records;
  auto leg = [](core::OrderId id, core::ItemId item, core::ReservationState state) {
    return core::Reservation{.order_id = id, .state = state, .item_id = item};
  };
  using RS = core::ReservationState;
  records.reservations[21] = {{1, leg(21, 1, RS::kReserved)}, {2, leg(21, 2, RS::kReserved)}};
  records.reservations[22] = {{1, leg(22, 1, RS::kReleased)}, {2, leg(22, 2, RS::kRejected)}};
  records.reservations[23] = {{1, leg(23, 1, RS::kReleased)}, {2, leg(23, 2, RS::kReleased)}};
  records.reservations[24] = {{1, leg(24, 1, RS::kRejected)}, {2, leg(24, 2, RS::kReleased)}};
  records.payments[21] = core::Payment{.order_id = 21, .amount = 300, .ok = true};
  for (auto& h : sagas) records.orders[h.id()] = core::OrderRecord{.order = h.state().order, .status = h.state().status};
  records.notifications[21] = core::Notification{.order_id = 21, .ok = true};
  EXPECT_TRUE(CheckParticipants(replayer, records, true).empty());
  // One item of an OK order not kept, one item of a NOT OK order still kept.
  records.reservations[21][2].state = RS::kReleased;
  records.reservations[23][1].state = RS::kReserved;
  const auto mismatches = CheckParticipants(replayer, records, true);
  ASSERT_EQ(mismatches.size(), 2u);
  EXPECT_EQ(mismatches[0].check, "an OK saga keeps its reservation of every item");
  EXPECT_EQ(mismatches[1].check, "a NOT OK saga releases its reservation of every item");
  EXPECT_NE(mismatches[1].participant.find("item 1: reservation Reserved"), std::string::npos)
      << mismatches[1].participant;
}

TEST(Replayer, VerifyCatchesAHistoryWrittenWithOtherAttemptsButFoldsItTheSame) {
  // Written with --max-attempts 5; today's code gives up after 3.
  History h(10, core::OrderSagaDefinition({.max_attempts = 5}));
  h.Place().Expire().Expire().Expire().Expire().Reply(Step::kReserveStock, true).Reply(Step::kCharge, true).Reply(
      Step::kNotify, true);

  Replayer folded(core::OrderSagaDefinition(), {});
  Feed(folded, h);
  folded.Finish();
  EXPECT_EQ(folded.Find(10)->state, h.state());
  EXPECT_EQ(folded.Find(10)->state.status, OrderStatus::kOk);

  Replayer verified(core::OrderSagaDefinition(), {.verify = true});
  Feed(verified, h);
  verified.Finish();
  const SagaReplay* r = verified.Find(10);
  ASSERT_TRUE(r->divergence.has_value());
  EXPECT_EQ(r->divergence->recorded, "reserve_stock timed out, attempt 3 -> retry");
  EXPECT_EQ(r->divergence->expected, "reserve_stock timed out, attempt 3 -> last attempt; compensate: release_stock");

  Replayer verified_with_5(core::OrderSagaDefinition({.max_attempts = 5}), {.verify = true});
  Feed(verified_with_5, h);
  verified_with_5.Finish();
  EXPECT_FALSE(verified_with_5.Find(10)->divergence.has_value());
}

TEST(Replayer, VerifiesAHistoryRecordedBeforeOutcomesWere) {
  History h(12);
  h.Place().Reply(Step::kReserveStock, true).Reply(Step::kCharge, false, "declined").Reply(Step::kReleaseStock, true);
  const core::SagaState expected = h.state();
  for (SagaEvent& e : h.events()) {
    if (auto* r = std::get_if<core::StepReplied>(&e.body)) {
      r->outcome = core::StepOutcome::kUnrecorded;
      r->compensations.clear();
    }
  }
  Replayer replayer(core::OrderSagaDefinition(), {.verify = true});
  Feed(replayer, h);
  replayer.Finish();
  const SagaReplay* r = replayer.Find(12);
  EXPECT_FALSE(r->divergence.has_value()) << r->divergence->recorded << " / " << r->divergence->expected;
  EXPECT_TRUE(r->violations.empty());
  EXPECT_EQ(r->state, expected);
}

TEST(Replayer, InvariantsCatchAChargeAfterCompensationAndTwoEnds) {
  Replayer replayer(core::OrderSagaDefinition(), {});
  const core::OrderId id = 11;
  const std::vector<SagaEvent> events{
      {kStart, core::SagaStarted{MakeOrder(id)}},
      {kStart, core::StepRequested{Step::kReserveStock, 1, kStart + 10'000}},
      {kStart + 1, core::StepReplied{Step::kReserveStock, 1, false, "out of stock"}},
      {kStart + 1, core::StepRequested{Step::kReleaseStock, 1, kStart + 10'000}},
      {kStart + 2, core::StepRequested{Step::kCharge, 1, kStart + 10'000}},
      {kStart + 3, core::SagaEnded{OrderStatus::kNotOk, ""}},
      {kStart + 4, core::SagaEnded{OrderStatus::kNotOk, ""}},
  };
  for (const auto& e : events) replayer.AddEvent(id, e);
  replayer.Finish();
  EXPECT_EQ(replayer.Find(id)->violations,
            (std::vector<std::string>{"charge requested after compensation began",
                                      "more than one terminal event: ended NOT OK"}));
}

TEST(Replayer, CountsRecordsThatAreNotSagaEvents) {
  Replayer replayer(core::OrderSagaDefinition(), {});
  replayer.Add(SourceRecord{1, 5, 0, "1", "garbage"});
  const std::string reply = core::Encode(core::Message{"m", 1, "", 0, 1, core::StepReply{Step::kCharge, 1, true, ""}});
  replayer.Add(SourceRecord{1, 6, 0, "1", reply});
  EXPECT_EQ(replayer.totals().records, 2);
  EXPECT_EQ(replayer.totals().undecodable, 2);
  EXPECT_NE(replayer.totals().first_undecodable.find("partition 1 offset 5"), std::string::npos);
  EXPECT_TRUE(replayer.Sagas().empty());
}

// ---- the export file ----

std::vector<std::string> WriteExport(const std::string& path, std::vector<History>& sagas) {
  auto writer = ExportWriter::Open(path, "orders.saga.events");
  EXPECT_TRUE(writer.ok());
  std::vector<std::string> values;
  int64_t offset = 0;
  for (auto& h : sagas) {
    for (auto& [at_ms, value] : h.Records()) {
      values.push_back(std::move(value));
      EXPECT_TRUE(writer.value()->Write(SourceRecord{0, offset++, at_ms, core::SagaKey(h.id()), values.back()}).ok());
    }
  }
  EXPECT_TRUE(writer.value()->Close().ok());
  return values;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}
void WriteAll(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

TEST(ExportFile, RoundTripsEveryRecord) {
  testing::TempDir dir;
  auto sagas = EveryOutcome();
  const std::string path = dir / "history.sgf";
  const auto values = WriteExport(path, sagas);
  std::vector<std::string> read;
  int64_t last_offset = -1;
  auto info = ReadExportFile(path, [&](const SourceRecord& r) {
    read.emplace_back(r.value);
    EXPECT_EQ(r.offset, last_offset + 1);
    last_offset = r.offset;
  });
  ASSERT_TRUE(info.ok()) << info.error().message;
  EXPECT_EQ(info->topic, "orders.saga.events");
  EXPECT_EQ(info->records, static_cast<int64_t>(values.size()));
  EXPECT_EQ(read, values);
}

TEST(ExportFile, DetectsAFlippedByte) {
  testing::TempDir dir;
  auto sagas = EveryOutcome();
  const std::string path = dir / "history.sgf";
  WriteExport(path, sagas);
  std::string bytes = ReadAll(path);
  bytes[bytes.size() / 2] ^= 0x01;
  WriteAll(path, bytes);
  auto info = ReadExportFile(path, [](const SourceRecord&) {});
  ASSERT_FALSE(info.ok());
  EXPECT_EQ(info.error().code, core::Errc::kCorrupt);
  EXPECT_NE(info.error().message.find("checksum mismatch"), std::string::npos) << info.error().message;
}

TEST(ExportFile, DetectsTruncationAtAnyLength) {
  testing::TempDir dir;
  auto sagas = EveryOutcome();
  const std::string path = dir / "history.sgf";
  WriteExport(path, sagas);
  const std::string bytes = ReadAll(path);
  for (size_t length : {size_t{0}, size_t{5}, size_t{30}, bytes.size() / 2, bytes.size() - 13, bytes.size() - 1}) {
    SCOPED_TRACE(length);
    WriteAll(path, bytes.substr(0, length));
    auto info = ReadExportFile(path, [](const SourceRecord&) {});
    ASSERT_FALSE(info.ok());
    EXPECT_EQ(info.error().code, core::Errc::kCorrupt);
  }
}

TEST(ExportFile, RejectsAFileThatIsNotAnExport) {
  testing::TempDir dir;
  const std::string path = dir / "notes.txt";
  WriteAll(path, "these are not the events you are looking for");
  auto info = ReadExportFile(path, [](const SourceRecord&) {});
  ASSERT_FALSE(info.ok());
  EXPECT_NE(info.error().message.find("wrong magic"), std::string::npos);
  EXPECT_EQ(ReadExportFile((dir / "missing").string(), [](const SourceRecord&) {}).error().code,
            core::Errc::kNotFound);
}

// ---- the command on an export file ----

TEST(ReplayCommand, ShowsTheCompensationOfAPaymentFailureFromAFile) {
  testing::TempDir dir;
  auto sagas = EveryOutcome();
  const std::string path = dir / "history.sgf";
  WriteExport(path, sagas);
  ReplayOptions o;
  o.source.file = path;
  o.saga = 3;
  std::ostringstream out, err;
  EXPECT_EQ(RunReplay(o, out, err), kExitOk) << err.str();
  EXPECT_NE(out.str().find("[compensation] release_stock requested"), std::string::npos) << out.str();
  EXPECT_NE(out.str().find("final: ended NOT OK"), std::string::npos) << out.str();

  o.saga.reset();
  o.verify = true;
  std::ostringstream verify_out;
  EXPECT_EQ(RunReplay(o, verify_out, err), kExitOk) << verify_out.str();
  EXPECT_NE(verify_out.str().find("7 agree, 0 diverge"), std::string::npos) << verify_out.str();
}

TEST(ReplayCommand, SummaryCountsFinalStatesAndFiltersStuckSagas) {
  testing::TempDir dir;
  auto sagas = EveryOutcome();
  const std::string path = dir / "history.sgf";
  WriteExport(path, sagas);
  ReplayOptions o;
  o.source.file = path;
  o.now_ms = kStart + 3'600'000;
  std::ostringstream out, err;
  EXPECT_EQ(RunReplay(o, out, err), kExitOk);
  EXPECT_NE(out.str().find("OK                    3"), std::string::npos) << out.str();
  EXPECT_NE(out.str().find("NOT OK                3"), std::string::npos) << out.str();
  EXPECT_NE(out.str().find("in flight: 1"), std::string::npos) << out.str();

  o.stuck_ms = 30 * 60'000;
  o.json = true;
  std::ostringstream stuck;
  EXPECT_EQ(RunReplay(o, stuck, err), kExitOk);
  EXPECT_NE(stuck.str().find("\"saga_id\":7"), std::string::npos) << stuck.str();
  const std::string lines = stuck.str();
  EXPECT_EQ(std::count(lines.begin(), lines.end(), '\n'), 1);
}

TEST(ReplayCommand, ACorruptFileIsOneLineAndExitTwo) {
  testing::TempDir dir;
  auto sagas = EveryOutcome();
  const std::string path = dir / "history.sgf";
  WriteExport(path, sagas);
  std::string bytes = ReadAll(path);
  WriteAll(path, bytes.substr(0, bytes.size() - 100));
  ReplayOptions o;
  o.source.file = path;
  std::ostringstream out, err;
  EXPECT_EQ(RunReplay(o, out, err), kExitBadInput);
  EXPECT_TRUE(out.str().empty());
  const std::string message = err.str();
  EXPECT_EQ(std::count(message.begin(), message.end(), '\n'), 1) << message;
  EXPECT_NE(err.str().find("export file"), std::string::npos);
}

TEST(ReplayCommand, AnUnknownSagaIsOneLineAndExitTwo) {
  testing::TempDir dir;
  auto sagas = EveryOutcome();
  const std::string path = dir / "history.sgf";
  WriteExport(path, sagas);
  ReplayOptions o;
  o.source.file = path;
  o.saga = 12345;
  std::ostringstream out, err;
  EXPECT_EQ(RunReplay(o, out, err), kExitBadInput);
  EXPECT_EQ(err.str(), "sagaflow replay: no saga 12345 in the history (7 saga(s) read)\n");
}

TEST(ReplayCommand, ParsesDurationsAndTimes) {
  EXPECT_EQ(ParseDuration("90s").value(), 90'000);
  EXPECT_EQ(ParseDuration("5m").value(), 300'000);
  EXPECT_EQ(ParseDuration("2h").value(), 7'200'000);
  EXPECT_EQ(ParseDuration("250ms").value(), 250);
  EXPECT_EQ(ParseDuration("1.5d").value(), 129'600'000);
  EXPECT_FALSE(ParseDuration("soon").ok());
  EXPECT_FALSE(ParseDuration("5 parsecs").ok());
  EXPECT_EQ(ParseTime("2026-11-27T06:00:00Z", 0).value(), 1'795'759'200'000);
  EXPECT_EQ(ParseTime("2026-11-27T07:00:00.250+01:00", 0).value(), 1'795'759'200'250);
  EXPECT_EQ(ParseTime("1795759200000", 0).value(), 1'795'759'200'000);
  EXPECT_EQ(ParseTime("1h", 10'000'000).value(), 10'000'000 - 3'600'000);
  EXPECT_FALSE(ParseTime("yesterday", 0).ok());
}

// ---- participants ----

TEST(Participants, ReportsAChargeOfACompensatedSagaAndAWrongOrderStatus) {
  auto sagas = EveryOutcome();
  Replayer replayer(core::OrderSagaDefinition(), {});
  for (auto& h : sagas) Feed(replayer, h);
  replayer.Finish();

  ParticipantRecords records;
  for (auto& h : sagas) {
    const auto& s = h.state();
    if (s.phase != core::SagaPhase::kEnded) continue;
    const bool ok = s.status == OrderStatus::kOk;
    records.reservations[h.id()][core::kNoLeg] = core::Reservation{
        .order_id = h.id(), .state = ok ? core::ReservationState::kReserved : core::ReservationState::kReleased};
    if (ok) records.payments[h.id()] = core::Payment{.order_id = h.id(), .amount = 300, .ok = true};
    records.orders[h.id()] = core::OrderRecord{.order = s.order, .status = s.status};
  }
  records.notifications[1] = core::Notification{.order_id = 1, .ok = true};
  records.notifications[5] = core::Notification{.order_id = 5, .ok = true};
  EXPECT_TRUE(CheckParticipants(replayer, records, true).empty());

  records.payments[3] = core::Payment{.order_id = 3, .amount = 300, .ok = true, .detail = "charged 300 by card"};
  records.orders[1].status = OrderStatus::kNotOk;
  records.payments[99] = core::Payment{.order_id = 99, .amount = 5, .ok = true};
  const auto mismatches = CheckParticipants(replayer, records, true);
  ASSERT_EQ(mismatches.size(), 3u);
  EXPECT_EQ(mismatches[0].saga_id, 1);
  EXPECT_EQ(mismatches[0].check, "the order's final status is the saga's");
  EXPECT_EQ(mismatches[0].participant, "order status NOT OK");
  EXPECT_EQ(mismatches[1].saga_id, 3);
  EXPECT_EQ(mismatches[1].check, "a NOT OK saga has no successful charge");
  EXPECT_EQ(mismatches[1].participant, "payment charged of 300 (charged 300 by card)");
  EXPECT_EQ(mismatches[2].saga_id, 99);
}

// ---- dead letters ----

TEST(Dlq, RefusesToRedriveWhatStillFailsValidation) {
  const core::TopicNames topics("p.");
  auto letter = [&](const std::string& topic, const std::string& key, const core::Message& m) {
    return core::DeadLetter{"reason", topic, 0, 1, key, core::Encode(m), "svc"};
  };
  const core::Message placed{"m", 42, "", 0, 1, core::OrderPlaced{MakeOrder(42)}};
  EXPECT_TRUE(ValidateForRedrive(topics, letter(topics.order, "42", placed)).ok());
  // Garbage, the wrong payload for the topic, a key that is not the saga, mismatching ids, a foreign topic.
  EXPECT_FALSE(ValidateForRedrive(topics, core::DeadLetter{"r", topics.order, 0, 1, "42", "garbage", "s"}).ok());
  EXPECT_FALSE(ValidateForRedrive(topics, letter(topics.payment_status, "42", placed)).ok());
  EXPECT_FALSE(ValidateForRedrive(topics, letter(topics.order, "43", placed)).ok());
  const core::Message mismatched{"m", 42, "", 0, 1, core::OrderPlaced{MakeOrder(7)}};
  EXPECT_NE(ValidateForRedrive(topics, letter(topics.order, "42", mismatched)).error().message.find("order id 7"),
            std::string::npos);
  EXPECT_FALSE(ValidateForRedrive(topics, letter("orders.service.order", "42", placed)).ok());
  const core::Message reply{"m", 42, "", 0, 1, core::StepReply{Step::kCharge, 1, true, ""}};
  EXPECT_TRUE(ValidateForRedrive(topics, letter(topics.payment_status, "42", reply)).ok());
}

}  // namespace
}  // namespace sagaflow::replay
