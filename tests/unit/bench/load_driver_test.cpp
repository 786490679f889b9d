#include "sagaflow/bench/load_driver.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>
#include <vector>

#include "sagaflow/runtime/http_server.hpp"
#include "support/temp_dir.hpp"

namespace sagaflow::bench {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using runtime::HttpRequest;
using runtime::HttpResponse;
using sagaflow::testing::TempDir;

// A stand-in for the order service's REST API, on the real HttpServer: each
// order ends a few milliseconds after it is placed and is announced on
// GET /orders/events. Every `not_ok_every`-th order ends NOT OK; orders whose
// id is in `silent` end without an event; ids in `stuck` never end.
class FakeOrderService {
 public:
  struct Behaviour {
    int not_ok_every = 0;
    std::set<int64_t> silent;
    std::set<int64_t> stuck;
  };

  explicit FakeOrderService(Behaviour behaviour) : behaviour_(std::move(behaviour)), http_("fake-order") {
    http_.Route("GET", "/", [](const HttpRequest&) { return HttpResponse::Json({{"status", "ok"}}); });
    http_.Route("POST", "/neworder", [this](const HttpRequest& req) {
      std::lock_guard lock(mu_);
      const int64_t id = ++last_id_;
      orders_[id] = {2, req.Header("Idempotency-Key")};
      if (!behaviour_.stuck.count(id)) pending_.push_back(id);
      cv_.notify_all();
      return HttpResponse::Json({{"order_id", id}, {"status", 2}});
    });
    http_.Route("GET", R"(/orders/(\d+))", [this](const HttpRequest& req) {
      std::lock_guard lock(mu_);
      auto it = orders_.find(std::stoll(req.captures[0]));
      if (it == orders_.end()) return HttpResponse::Error(404, "no order");
      return HttpResponse::Json({{"order_id", it->first},
                                 {"status", it->second.status},
                                 {"detail", ""},
                                 {"accepted_at", "2026-11-27T10:00:00.000Z"},
                                 {"finished_at", "2026-11-27T10:00:00.012Z"}});
    });
    http_.RouteDeferred("GET", "/orders/events", [this](const HttpRequest&, runtime::HttpResponder responder) {
      std::lock_guard lock(mu_);
      streams_.push_back(responder.StartEvents());
    });
    EXPECT_TRUE(http_.Start("127.0.0.1", 0).ok());
    finisher_ = std::thread([this] { Finish(); });
  }

  ~FakeOrderService() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
      cv_.notify_all();
    }
    finisher_.join();
    http_.Stop();
  }

  std::string url() const { return "http://127.0.0.1:" + std::to_string(http_.port()); }
  int64_t placed() {
    std::lock_guard lock(mu_);
    return last_id_;
  }

 private:
  struct Order {
    int status;
    std::string key;
  };

  void Finish() {
    std::unique_lock lock(mu_);
    while (!stop_) {
      cv_.wait_for(lock, 2ms);
      for (int64_t id : pending_) {
        auto& o = orders_[id];
        o.status = behaviour_.not_ok_every > 0 && id % behaviour_.not_ok_every == 0 ? 4 : 3;
        if (behaviour_.silent.count(id)) continue;
        const std::string data = json{{"order_id", id},
                                      {"status", o.status},
                                      {"detail", ""},
                                      {"idempotency_key", o.key},
                                      {"accepted_at_ms", 1000},
                                      {"finished_at_ms", 1007}}
                                     .dump();
        for (const auto& s : streams_) s.Send("final", data);
      }
      pending_.clear();
    }
  }

  Behaviour behaviour_;
  runtime::HttpServer http_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  int64_t last_id_ = 0;
  std::map<int64_t, Order> orders_;
  std::vector<int64_t> pending_;
  std::vector<runtime::HttpEventStream> streams_;
  std::thread finisher_;
};

TEST(LoadDriver, ClosedLoopPlacesEveryOrderAndSeesEachEndOnTheEventStream) {
  FakeOrderService::Behaviour behaviour;
  behaviour.not_ok_every = 10;
  FakeOrderService fake(behaviour);
  LoadOptions o;
  o.order_url = fake.url();
  o.orders = 60;
  o.concurrency = 6;
  o.timeout = 20s;
  o.progress_interval = 1ms;
  std::atomic<int> progress_calls{0};
  const auto r = RunLoad(o, [&](const Progress&) { progress_calls.fetch_add(1); });
  ASSERT_TRUE(r.error.empty()) << r.error;
  EXPECT_EQ(r.sent, 60);
  EXPECT_EQ(r.ok, 54);
  EXPECT_EQ(r.not_ok, 6);
  EXPECT_EQ(r.failed(), 0);
  EXPECT_EQ(r.completed_unobserved, 0);
  EXPECT_EQ(r.latency.count, 60);
  EXPECT_EQ(r.server_latency.count, 60);
  EXPECT_DOUBLE_EQ(r.server_latency.p50, 7.0);
  EXPECT_EQ(r.post_latency.count, 60);
  ASSERT_FALSE(r.timeline.empty());
  int64_t completed = 0, sent = 0;
  for (const auto& p : r.timeline) {
    completed += p.completed;
    sent += p.sent;
  }
  EXPECT_EQ(completed, 60);
  EXPECT_EQ(sent, 60);
  EXPECT_EQ(fake.placed(), 60);

  const auto j = json::parse(ToJson(r));
  EXPECT_EQ(j["options"]["mode"], "closed");
  EXPECT_EQ(j["completed_ok"], 54);
  EXPECT_EQ(j["orders"].size(), 60u);
  for (const char* field : {"p50", "p95", "p99", "p99_9", "max"}) EXPECT_TRUE(j["latency_ms"].contains(field)) << field;
  EXPECT_TRUE(j.contains("machine_cpu_ms_per_saga"));
  EXPECT_FALSE(j["timeline"].empty());
  const auto svg = ToSvgChart(r);
  EXPECT_EQ(svg.rfind("<svg", 0), 0u);
  EXPECT_NE(svg.find("</svg>"), std::string::npos);
  EXPECT_NE(FormatReport(r).find("p99.9"), std::string::npos);
}

TEST(LoadDriver, OpenLoopSendsTheOrdersDueWithinTheDuration) {
  FakeOrderService fake(FakeOrderService::Behaviour{});
  LoadOptions o;
  o.order_url = fake.url();
  o.orders = 0;
  o.rate = 200;
  o.duration = 500ms;  // orders due at 0, 5, ..., 495 ms
  o.connections = 4;
  o.timeout = 20s;
  const auto r = RunLoad(o);
  ASSERT_TRUE(r.error.empty()) << r.error;
  EXPECT_EQ(r.sent, 100);
  EXPECT_EQ(r.ok, 100);
  EXPECT_EQ(r.latency.count, 100);
  EXPECT_EQ(json::parse(ToJson(r))["options"]["mode"], "open");
}

TEST(LoadDriver, AnEndTheStreamMissedIsFoundByOneGetAndAnOrderThatNeverEndsTimesOut) {
  FakeOrderService::Behaviour behaviour;
  behaviour.silent = {3};
  behaviour.stuck = {5};
  FakeOrderService fake(behaviour);
  LoadOptions o;
  o.order_url = fake.url();
  o.orders = 8;
  o.concurrency = 8;
  o.timeout = 500ms;
  const auto r = RunLoad(o);
  ASSERT_TRUE(r.error.empty()) << r.error;
  EXPECT_EQ(r.sent, 8);
  EXPECT_EQ(r.ok, 7);
  EXPECT_EQ(r.completed_unobserved, 1);
  EXPECT_EQ(r.latency.count, 6) << "an end not seen on the stream has no latency";
  EXPECT_EQ(r.timeouts, 1);
  int timed_out = 0;
  for (const auto& order : r.orders) {
    if (order.outcome == Outcome::kTimeout) {
      ++timed_out;
      EXPECT_EQ(order.order_id, 5);
    }
  }
  EXPECT_EQ(timed_out, 1);
}

TEST(LoadDriver, StopEndsTheRunEarlyAndTheReportStillComes) {
  FakeOrderService fake(FakeOrderService::Behaviour{});
  std::atomic<bool> stop{true};
  LoadOptions o;
  o.order_url = fake.url();
  o.orders = 1'000'000;
  o.stop = &stop;
  const auto r = RunLoad(o);
  ASSERT_TRUE(r.error.empty()) << r.error;
  EXPECT_TRUE(r.stopped_early);
  EXPECT_EQ(r.sent, 0);
}

TEST(LoadDriver, RefusesAnythingButTheLoopbackAndAnUnboundedRun) {
  LoadOptions o;
  o.order_url = "http://10.0.0.1:8281";
  EXPECT_TRUE(Validate(o).has_value());
  o.order_url = "http://example.com:8281";
  EXPECT_TRUE(Validate(o).has_value());
  o.order_url = "https://127.0.0.1:8281";
  EXPECT_TRUE(Validate(o).has_value());
  o.order_url = "http://localhost:8281/";
  EXPECT_FALSE(Validate(o).has_value());
  o.orders = 0;
  o.duration = 0ms;
  EXPECT_TRUE(Validate(o).has_value());
  o.duration = 1s;
  EXPECT_FALSE(Validate(o).has_value());
  o.warmup = -1s;
  EXPECT_TRUE(Validate(o).has_value());
  o.warmup = 2h;
  EXPECT_TRUE(Validate(o).has_value());
  o.warmup = 60s;
  EXPECT_FALSE(Validate(o).has_value());
}

TEST(LoadDriver, TheBenchCommandWarmsUpOnOtherOrdersAndReportsOnlyTheMeasuredOnes) {
  FakeOrderService fake({});
  LoadOptions o;
  o.order_url = fake.url();
  o.orders = 30;
  o.concurrency = 4;
  o.warmup = 300ms;
  TempDir dir("sagaflow-bench-warmup");
  const auto path = (dir.path() / "report.json").string();
  ASSERT_EQ(RunBenchCommand(o, path, ""), 0);
  std::ifstream in(path);
  const auto report = json::parse(in);
  EXPECT_EQ(report.at("sent").get<int64_t>(), 30);
  EXPECT_EQ(report.at("completed_ok").get<int64_t>(), 30);
  EXPECT_DOUBLE_EQ(report.at("options").at("warmup_s").get<double>(), 0.3);
  EXPECT_GT(fake.placed(), 30) << "the warm-up placed no order of its own";
}

// The report's percentiles come from the histogram of microseconds, in milliseconds.
TEST(LoadDriver, StatsAreTheHistogramsPercentilesInMilliseconds) {
  LatencyHistogram h;
  for (int64_t ms = 1; ms <= 1000; ++ms) h.Record(ms * 1000);
  const auto s = StatsOf(h);
  EXPECT_EQ(s.count, 1000);
  EXPECT_DOUBLE_EQ(s.min, 1.0);
  EXPECT_DOUBLE_EQ(s.max, 1000.0);
  EXPECT_DOUBLE_EQ(s.mean, 500.5);
  EXPECT_DOUBLE_EQ(s.p50, static_cast<double>(h.ValueAtPercentile(50)) / 1000.0);
  EXPECT_DOUBLE_EQ(s.p99, static_cast<double>(h.ValueAtPercentile(99)) / 1000.0);
  EXPECT_DOUBLE_EQ(s.p999, static_cast<double>(h.ValueAtPercentile(99.9)) / 1000.0);
  EXPECT_NEAR(s.p50, 500.0, 500.0 * 0.01);
  EXPECT_NEAR(s.p99, 990.0, 990.0 * 0.01);
  EXPECT_EQ(StatsOf(LatencyHistogram()).count, 0);
  EXPECT_DOUBLE_EQ(StatsOf(LatencyHistogram()).max, 0.0);
}

TEST(LoadDriver, AnUnreachableOrderServiceIsReportedNotRun) {
  LoadOptions o;
  o.order_url = "http://127.0.0.1:1";
  o.orders = 1;
  const auto r = RunLoad(o);
  EXPECT_FALSE(r.error.empty());
  EXPECT_EQ(r.sent, 0);
}

TEST(LoadDriver, ReadsTheMachinesCpuTimes) {
  const auto t = ReadCpuTimes();
  ASSERT_TRUE(t.has_value());
  EXPECT_GT(t->busy_s + t->idle_s, 0);
}

}  // namespace
}  // namespace sagaflow::bench
