// Learning an order's end without polling: GET /orders/{id}?wait=SECONDS
// answers once the final status is committed, and GET /orders/events streams
// one "final" event per order that ends. The whole system runs in-process
// against the real broker.

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>

#include "sagaflow/runtime/http_client.hpp"
#include "sagaflow/runtime/order_json.hpp"
#include "support/test_system.hpp"

namespace sagaflow::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

class LongPoll : public SystemTest {};

TestSystemOptions Named(const std::string& name) {
  TestSystemOptions options;
  options.name = name;
  return options;
}

TEST_F(LongPoll, AWaitingGetAnswersWithTheFinalStatus) {
  ASSERT_NO_FATAL_FAILURE(Boot(Named("longpoll")));
  const auto id = system_->PlaceOrder();
  ASSERT_NE(id, 0);
  runtime::HttpClient client("127.0.0.1", system_->port("order"));
  // One request: the answer comes when the saga has ended (or, on a very slow
  // machine, after 60 s with the state as it is then; then ask once more).
  json order;
  for (int i = 0; i < 3; ++i) {
    auto r = client.Get("/orders/" + std::to_string(id) + "?wait=60", 90s);
    ASSERT_TRUE(r.ok()) << r.error().message;
    ASSERT_EQ(r->status, 200) << r->body;
    order = json::parse(r->body);
    if (order["status"] == 3 || order["status"] == 4) break;
  }
  EXPECT_EQ(order["status"], 3) << order.dump();
  EXPECT_EQ(order["order_id"], id);
  // Once final, a waiting GET answers at once with the same state.
  auto again = client.Get("/orders/" + std::to_string(id) + "?wait=60", 90s);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(json::parse(again->body)["status"], 3);
}

TEST_F(LongPoll, WaitMustBeAWholeNumberOfSecondsUpToSixty) {
  ASSERT_NO_FATAL_FAILURE(Boot(Named("longpollbad")));
  const auto id = std::to_string(system_->PlaceOrder());
  for (const std::string bad : {"10abc", "-1", "61", "", "1.5"}) {
    auto r = system_->Get("order", "/orders/" + id + "?wait=" + bad);
    EXPECT_EQ(r.status, 400) << bad << ": " << r.body;
    EXPECT_EQ(r.json.value("status", 0), 400) << r.body;
  }
  EXPECT_EQ(system_->Get("order", "/orders/1?wait=5").status, 404);
  EXPECT_EQ(system_->Get("order", "/orders?limit=10abc").status, 400);
}

// Lives here because it is one more order-service edge case on the same booted system shape.
TEST_F(LongPoll, AReusedIdempotencyKeyWithADifferentBodyIs422) {
  ASSERT_NO_FATAL_FAILURE(Boot(Named("idem422")));
  const auto id = system_->PlaceOrder(ReferenceOrder(), "idem-422");
  ASSERT_NE(id, 0);
  auto same = system_->Post("order", "/neworder", ReferenceOrder(), {{"Idempotency-Key", "idem-422"}});
  EXPECT_EQ(same.status, 200) << same.body;
  EXPECT_EQ(same.json.value("order_id", core::OrderId{0}), id);
  auto other = ReferenceOrder();
  other["sum"] = other["sum"].get<int64_t>() + 1;
  auto changed = system_->Post("order", "/neworder", other, {{"Idempotency-Key", "idem-422"}});
  EXPECT_EQ(changed.status, 422) << changed.body;
  EXPECT_EQ(changed.json.value("status", 0), 422) << changed.body;
}

TEST_F(LongPoll, TheEventStreamAnnouncesEachFinalStatus) {
  ASSERT_NO_FATAL_FAILURE(Boot(Named("events")));
  std::mutex mu;
  json seen;
  std::atomic<bool> open{false};
  const std::string key = "events-test-1";
  std::thread reader([&] {
    runtime::HttpClient client("127.0.0.1", system_->port("order"));
    auto s = client.ReadEvents(
        "/orders/events",
        [&](std::string_view event, std::string_view data) {
          if (event != "final") return true;
          auto j = json::parse(data);
          if (j.value("idempotency_key", "") != key) return true;
          std::lock_guard lock(mu);
          seen = j;
          return false;
        },
        Clock::now() + 90s, nullptr, [&] { open.store(true); });
    EXPECT_TRUE(s.ok()) << s.error().message;
  });
  const auto limit = Clock::now() + 30s;
  while (!open.load() && Clock::now() < limit) std::this_thread::sleep_for(10ms);
  ASSERT_TRUE(open.load());
  const auto id = system_->PlaceOrder(ReferenceOrder(), key);
  reader.join();
  std::lock_guard lock(mu);
  ASSERT_TRUE(seen.is_object());
  EXPECT_EQ(seen["order_id"], id);
  EXPECT_EQ(seen["status"], 3);
  // The event's times are the order's own: what GET /orders/{id} answers once it ended.
  ASSERT_TRUE(seen["accepted_at_ms"].is_number_integer()) << seen.dump();
  ASSERT_TRUE(seen["finished_at_ms"].is_number_integer()) << seen.dump();
  const auto order = system_->WaitForFinal(id);
  EXPECT_EQ(order.value("accepted_at", ""), runtime::FormatTime(seen["accepted_at_ms"].get<int64_t>()))
      << seen.dump() << " vs " << order.dump();
  EXPECT_EQ(order.value("finished_at", ""), runtime::FormatTime(seen["finished_at_ms"].get<int64_t>()))
      << seen.dump() << " vs " << order.dump();
}

}  // namespace
}  // namespace sagaflow::testing
