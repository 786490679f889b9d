// An order's end announced from the status topic ahead of its record
// (early_finals.hpp): every interleaving of the status reader and the view
// announces each end exactly once, and reads never go back.

#include "sagaflow/order/early_finals.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace sagaflow::order {
namespace {

constexpr core::OrderId kId = 42;
constexpr core::TimeMs kAccepted = 1'700'000'000'000;

core::OrderRecord InProcess(core::OrderId id = kId) {
  core::OrderRecord r;
  r.order.order_id = id;
  r.status = core::OrderStatus::kProcess;
  r.accepted_at_ms = kAccepted;
  r.idempotency_key = "key";
  return r;
}

core::FinalStatus Ok() { return {core::OrderStatus::kOk, "done", {}}; }

// What the order task records for the same status.
core::OrderRecord Recorded(core::OrderRecord r, const core::FinalStatus& status, core::TimeMs produced_at) {
  RecordFinal(r, status, produced_at);
  return r;
}

using Viewed = std::optional<core::OrderRecord>;

TEST(EarlyFinals, TheStatusReaderAnnouncesAnOrderTheViewHoldsInProcessAndTheRecordedEndIsNotAnnouncedAgain) {
  EarlyFinals early(10);
  auto announced = early.OnStatus(kId, Ok(), kAccepted + 5, [] { return Viewed(InProcess()); });
  ASSERT_TRUE(announced);
  EXPECT_EQ(announced->status, core::OrderStatus::kOk);
  EXPECT_EQ(announced->detail, "done");
  EXPECT_EQ(announced->finished_at_ms, kAccepted + 5);
  EXPECT_EQ(announced->idempotency_key, "key");
  // Reads see the end before the view holds it, the same as the recorded order.
  EXPECT_EQ(early.Overlay(InProcess()), Recorded(InProcess(), Ok(), kAccepted + 5));
  EXPECT_EQ(early.size(), 1u);
  EXPECT_FALSE(early.OnViewed(InProcess()));
  EXPECT_FALSE(early.OnViewed(Recorded(InProcess(), Ok(), kAccepted + 5)));
  EXPECT_EQ(early.size(), 0u);
}

TEST(EarlyFinals, AnEndTheViewHoldsAlreadyIsLeftToTheView) {
  EarlyFinals early(10);
  const auto final_order = Recorded(InProcess(), Ok(), kAccepted + 5);
  EXPECT_FALSE(early.OnStatus(kId, Ok(), kAccepted + 5, [&] { return Viewed(final_order); }));
  EXPECT_TRUE(early.OnViewed(final_order));
  EXPECT_EQ(early.size(), 0u);
}

TEST(EarlyFinals, AnOrderNotViewedYetIsAnnouncedByTheViewWithItsRecordedEnd) {
  EarlyFinals early(10);
  EXPECT_FALSE(early.OnStatus(kId, Ok(), kAccepted + 5, [] { return Viewed(); }));
  EXPECT_FALSE(early.OnViewed(InProcess()));
  EXPECT_EQ(early.Overlay(InProcess()).status, core::OrderStatus::kProcess);
  EXPECT_TRUE(early.OnViewed(Recorded(InProcess(), Ok(), kAccepted + 5)));
}

TEST(EarlyFinals, TheFirstEndOfAnOrderWinsAndNonFinalStatusesAreIgnored) {
  EarlyFinals early(10);
  EXPECT_FALSE(early.OnStatus(kId, {core::OrderStatus::kProcess, "", {}}, kAccepted, [] { return Viewed(InProcess()); }));
  ASSERT_TRUE(early.OnStatus(kId, Ok(), kAccepted + 5, [] { return Viewed(InProcess()); }));
  EXPECT_FALSE(early.OnStatus(kId, {core::OrderStatus::kNotOk, "late", {}}, kAccepted + 9,
                              [] { return Viewed(InProcess()); }));
  EXPECT_EQ(early.Overlay(InProcess()).status, core::OrderStatus::kOk);
}

TEST(EarlyFinals, AFinishIsNeverBeforeTheAcceptance) {
  auto r = InProcess();
  RecordFinal(r, Ok(), kAccepted - 1000);  // another machine's clock
  EXPECT_EQ(r.finished_at_ms, kAccepted);
}

TEST(EarlyFinals, BeyondItsCapacityEndsTakeTheViewsPath) {
  EarlyFinals early(2);
  for (core::OrderId id = 1; id <= 3; ++id) {
    auto announced = early.OnStatus(id, Ok(), kAccepted, [id] { return Viewed(InProcess(id)); });
    EXPECT_EQ(announced.has_value(), id <= 2) << id;
  }
  EXPECT_TRUE(early.OnViewed(Recorded(InProcess(3), Ok(), kAccepted)));
  EXPECT_FALSE(early.OnViewed(Recorded(InProcess(1), Ok(), kAccepted)));
  // Room again.
  EXPECT_TRUE(early.OnStatus(4, Ok(), kAccepted, [] { return Viewed(InProcess(4)); }));
}

// The two readers race on many orders: the view stores a record (the order in
// process, then its end) and calls OnViewed; the status reader reads the
// view's current record inside OnStatus. Each end is announced exactly once.
TEST(EarlyFinals, RacingReadersAnnounceEachEndExactlyOnce) {
  constexpr int kOrders = 5000;
  EarlyFinals early(kOrders);
  // 0 absent, 1 in process, 2 final: what the view holds of each order.
  std::vector<std::atomic<int>> view(kOrders + 1);
  std::vector<std::atomic<int>> announcements(kOrders + 1);
  std::atomic<core::OrderId> reader_at{0};
  std::atomic<int> early_ones{0};
  std::thread viewer([&] {
    for (core::OrderId id = 1; id <= kOrders; ++id) {
      view[id].store(1);
      if (early.OnViewed(InProcess(id))) announcements[id].fetch_add(1);
      // The recorded end comes while the status reader reads the same order.
      while (reader_at.load() < id) std::this_thread::yield();
      for (int k = 0; k < id % 5 * 20; ++k) std::this_thread::yield();  // later for some orders
      view[id].store(2);
      if (early.OnViewed(Recorded(InProcess(id), Ok(), kAccepted))) announcements[id].fetch_add(1);
    }
  });
  std::thread reader([&] {
    for (core::OrderId id = 1; id <= kOrders; ++id) {
      while (view[id].load() == 0) std::this_thread::yield();  // a status follows its order
      reader_at.store(id);
      auto announced = early.OnStatus(id, Ok(), kAccepted, [&]() -> Viewed {
        switch (view[id].load()) {
          case 1: return InProcess(id);
          case 2: return Recorded(InProcess(id), Ok(), kAccepted);
          default: return std::nullopt;
        }
      });
      if (announced) {
        announcements[id].fetch_add(1);
        early_ones.fetch_add(1);
      }
    }
  });
  viewer.join();
  reader.join();
  for (core::OrderId id = 1; id <= kOrders; ++id) EXPECT_EQ(announcements[id].load(), 1) << "order " << id;
  EXPECT_EQ(early.size(), 0u);
  // Most ends go the early way; which one wins an order is up to the scheduler.
  RecordProperty("announced_early", early_ones.load());
}

}  // namespace
}  // namespace sagaflow::order
