// Learning an order's end without polling: GET /orders/{id}?wait=SECONDS
// answers once the final status is committed, and GET /orders/events streams
// one "final" event per order that ends. The whole system runs in-process
// against the real broker.

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

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

// Follows GET /orders/events on a thread of its own: `on_final` gets each
// "final" event's data until it returns false (or 120 s pass). Stopped and
// joined when destroyed, so a failed assertion never leaves it running.
class FinalEvents {
 public:
  FinalEvents(int port, std::function<bool(const json&)> on_final) {
    reader_ = std::thread([this, port, on_final = std::move(on_final)] {
      runtime::HttpClient client("127.0.0.1", port);
      auto s = client.ReadEvents(
          "/orders/events",
          [&](std::string_view event, std::string_view data) {
            return event != "final" || on_final(json::parse(data));
          },
          Clock::now() + 120s, &stop_, [this] { open_.store(true); });
      EXPECT_TRUE(s.ok()) << s.error().message;
    });
  }
  ~FinalEvents() {
    stop_.store(true);
    Join();
  }
  /// Whether the server accepted the stream within 30 s.
  bool WaitOpen() const {
    const auto limit = Clock::now() + 30s;
    while (!open_.load() && Clock::now() < limit) std::this_thread::sleep_for(10ms);
    return open_.load();
  }
  /// Waits until `on_final` returned false.
  void Join() {
    if (reader_.joinable()) reader_.join();
  }

 private:
  std::atomic<bool> open_{false};
  std::atomic<bool> stop_{false};
  std::thread reader_;
};

TEST_F(LongPoll, TheEventStreamAnnouncesEachFinalStatus) {
  ASSERT_NO_FATAL_FAILURE(Boot(Named("events")));
  std::mutex mu;
  json seen;
  const std::string key = "events-test-1";
  FinalEvents events(system_->port("order"), [&](const json& j) {
    if (j.value("idempotency_key", "") != key) return true;
    std::lock_guard lock(mu);
    seen = j;
    return false;
  });
  ASSERT_TRUE(events.WaitOpen());
  const auto id = system_->PlaceOrder(ReferenceOrder(), key);
  events.Join();
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

// An order's end reaches the clients twice: from the orchestrator's status
// record, and a transaction later from the order's own record. Each end is
// announced once, and a read right after the announcement already says it.
TEST_F(LongPoll, EachEndIsAnnouncedOnceAndReadsAgreeWithTheAnnouncement) {
  ASSERT_NO_FATAL_FAILURE(Boot(Named("announce-once")));
  constexpr int kOrders = 20;
  const std::string prefix = "once-" + std::to_string(core::NowMs()) + "-";
  const std::string sentinel = prefix + "sentinel";
  std::mutex mu;
  std::map<std::string, int> announced;  // by idempotency key
  std::vector<std::string> disagreements;
  FinalEvents events(system_->port("order"), [&](const json& j) {
    const std::string key = j.value("idempotency_key", "");
    if (key.rfind(prefix, 0) != 0) return true;
    if (key == sentinel) return false;
    const auto id = j["order_id"].get<core::OrderId>();
    auto now = system_->Get("order", "/orders/" + std::to_string(id));
    std::lock_guard lock(mu);
    ++announced[key];
    if (now.status != 200 || now.json.value("status", 0) != j["status"].get<int>()) {
      disagreements.push_back(key + " announced " + j.dump() + ", then read " + now.body);
    }
    return true;
  });
  ASSERT_TRUE(events.WaitOpen());
  std::vector<core::OrderId> ids;
  for (int i = 0; i < kOrders; ++i) ids.push_back(system_->PlaceOrder(ReferenceOrder(), prefix + std::to_string(i)));
  for (const auto& order : system_->WaitForAllFinal(ids, 60s)) ASSERT_EQ(order.value("status", 0), 3) << order.dump();
  // Every order's recorded end is committed, and the view has applied it (a
  // list waits for the view to hold everything committed before it): a second
  // announcement, if any, is on the stream before the sentinel's.
  const auto recorded_limit = Clock::now() + 60s;
  size_t recorded = 0;
  while (Clock::now() < recorded_limit) {
    recorded = 0;
    for (const auto& r : system_->ReadTopic(system_->topics().order_orders)) {
      const auto* order = r.message ? std::get_if<core::OrderRecord>(&r.message->payload) : nullptr;
      if (order && order->idempotency_key.rfind(prefix, 0) == 0 && order->status == core::OrderStatus::kOk) {
        ++recorded;
      }
    }
    if (recorded == kOrders) break;
    std::this_thread::sleep_for(50ms);
  }
  ASSERT_EQ(recorded, static_cast<size_t>(kOrders));
  ASSERT_EQ(system_->Get("order", "/orders?limit=1").status, 200);
  system_->WaitForFinal(system_->PlaceOrder(ReferenceOrder(), sentinel));
  events.Join();  // it returns at the sentinel's event
  std::lock_guard lock(mu);
  EXPECT_EQ(announced.size(), static_cast<size_t>(kOrders));
  for (const auto& [key, times] : announced) EXPECT_EQ(times, 1) << key;
  EXPECT_TRUE(disagreements.empty()) << disagreements.front();
  // How many went the early way is up to timing; the counter is exported.
  EXPECT_NE(system_->Get("order", "/metrics").body.find("sagaflow_orders_finished_early_total"), std::string::npos);
}

}  // namespace
}  // namespace sagaflow::testing
