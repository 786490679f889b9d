#include "sagaflow/bench/load_driver.hpp"

#include <signal.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <ctime>
#include <deque>
#include <fstream>
#include <iostream>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <semaphore>
#include <sstream>
#include <thread>

#include "sagaflow/runtime/http_client.hpp"

namespace sagaflow::bench {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr int kStatusOk = 3;
constexpr int kStatusNotOk = 4;
// Orders the final pass asks about one by one when the event stream missed them.
constexpr int64_t kMaxFinalChecks = 10'000;
// Per-order results are written to the JSON only up to this many orders.
constexpr int64_t kMaxOrdersInJson = 100'000;

double MsBetween(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double, std::milli>(to - from).count();
}

int64_t UsBetween(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration_cast<std::chrono::microseconds>(to - from).count();
}

std::string IsoUtcNow() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// "2026-11-26T09:21:45.525Z" (runtime::FormatTime) -> ms since the epoch, or nullopt.
std::optional<int64_t> ParseIsoMs(const json& value) {
  if (!value.is_string()) return std::nullopt;
  std::tm tm{};
  int ms = 0;
  const std::string text = value.get<std::string>();
  if (std::sscanf(text.c_str(), "%d-%d-%dT%d:%d:%d.%dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
                  &tm.tm_min, &tm.tm_sec, &ms) != 7) {
    return std::nullopt;
  }
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return static_cast<int64_t>(timegm(&tm)) * 1000 + ms;
}

// "http://127.0.0.1:PORT" or "http://localhost:PORT" (trailing "/" allowed) -> (host, port).
std::optional<std::pair<std::string, int>> ParseLoopbackUrl(const std::string& url) {
  const std::string scheme = "http://";
  if (url.rfind(scheme, 0) != 0) return std::nullopt;
  std::string authority = url.substr(scheme.size());
  if (!authority.empty() && authority.back() == '/') authority.pop_back();
  const auto colon = authority.rfind(':');
  if (colon == std::string::npos) return std::nullopt;
  const std::string host = authority.substr(0, colon);
  if (host != "127.0.0.1" && host != "localhost") return std::nullopt;
  const std::string port_text = authority.substr(colon + 1);
  if (port_text.empty() || port_text.size() > 5 || port_text.find_first_not_of("0123456789") != std::string::npos) {
    return std::nullopt;
  }
  const int port = std::stoi(port_text);
  if (port < 1 || port > 65535) return std::nullopt;
  return std::make_pair(std::string("127.0.0.1"), port);
}

std::string Describe(const char* what, const core::Result<runtime::HttpClientResponse>& res) {
  if (!res.ok()) return std::string(what) + ": no answer (" + res.error().message + ")";
  std::string body = res->body.substr(0, 200);
  while (!body.empty() && (body.back() == '\n' || body.back() == '\r')) body.pop_back();
  return std::string(what) + ": HTTP " + std::to_string(res->status) + " " + body;
}

uint64_t SplitMix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// The reference request body with random items from the configured range;
// order `index` of a seed is always the same order.
std::string OrderBody(const LoadOptions& o, int64_t index) {
  std::mt19937_64 rng(SplitMix64(o.seed ^ SplitMix64(static_cast<uint64_t>(index))));
  auto uniform = [&rng](int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); };
  std::vector<int64_t> ids;
  json items = json::array();
  int64_t sum = 0;
  while (static_cast<int>(ids.size()) < o.items_per_order) {
    const int64_t id = o.first_item_id + uniform(0, o.items - 1);
    if (std::find(ids.begin(), ids.end(), id) != ids.end()) continue;
    ids.push_back(id);
    const int64_t quantity = uniform(1, o.max_quantity);
    const int64_t price = uniform(1, 100) * 5;
    sum += quantity * price;
    items.push_back({{"item_id", id}, {"quantity", quantity}, {"price", price}});
  }
  const std::string now = IsoUtcNow();
  json body = {{"order_id", 0},     {"user_id", uniform(1, 1000)}, {"payment", uniform(1, 2)},
               {"notification", 1}, {"created_at", now},           {"approved_at", now},
               {"sum", sum},        {"items", items},              {"status", 1},
               {"detail", ""}};
  return body.dump();
}

std::string RunId() {
  std::random_device rd;
  char buf[32];
  std::snprintf(buf, sizeof(buf), "bench-%08x%08x", rd(), rd());
  return buf;
}

std::string Fixed(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", decimals, v);
  return buf;
}

std::atomic<bool> g_stop_requested{false};
extern "C" void OnStopSignal(int) { g_stop_requested.store(true); }

// One order while the run lasts.
struct Slot {
  OrderResult r;
  bool used = false;
  bool finished = false;  // the outcome is decided
  Clock::time_point due;  // latency origin
  Clock::time_point deadline;
  int worker = -1;  // closed loop: the worker waiting for it
};

// One second of the run.
struct Second {
  int64_t sent = 0;
  int64_t completed = 0;
  LatencyHistogram latency{7};  // 1.6 % resolution is plenty for a chart
};

// Everything the threads of one run share. `mu` guards the slots, the
// histograms and the seconds.
class Run {
 public:
  Run(const LoadOptions& o, std::string host, int port)
      : o_(o), host_(std::move(host)), port_(port), run_id_(RunId()) {}

  LoadResult Go(const std::function<void(const Progress&)>& on_progress);

 private:
  bool SendingOver(Clock::time_point now) const {
    if (o_.stop != nullptr && o_.stop->load()) return true;
    return o_.duration.count() > 0 && now >= start_ + o_.duration;
  }

  Slot& NewSlot(int64_t index, Clock::time_point due, int worker) {
    std::lock_guard lock(mu_);
    if (static_cast<int64_t>(slots_.size()) <= index) slots_.resize(static_cast<size_t>(index) + 1);
    Slot& s = slots_[static_cast<size_t>(index)];
    s.used = true;
    s.r.index = index;
    s.due = due;
    s.deadline = due + o_.timeout;
    s.worker = worker;
    SecondAt(Clock::now()).sent += 1;
    sent_.fetch_add(1);
    return s;
  }

  Second& SecondAt(Clock::time_point t) {  // under mu_
    const auto i = static_cast<size_t>(std::max<int64_t>(0, UsBetween(start_, t) / 1'000'000));
    while (seconds_.size() <= i) seconds_.emplace_back();
    return seconds_[i];
  }

  // Under mu_: decides `s`'s outcome.
  void Finish(Slot& s, Outcome outcome, Clock::time_point seen, bool observed = true) {
    if (s.finished) return;
    s.finished = true;
    s.r.outcome = outcome;
    if (outcome == Outcome::kOk || outcome == Outcome::kNotOk) {
      (outcome == Outcome::kOk ? ok_ : not_ok_).fetch_add(1);
      if (observed) {
        const int64_t us = UsBetween(s.due, seen);
        s.r.latency_ms = static_cast<double>(us) / 1000.0;
        latency_.Record(us);
        interval_.Record(us);
        auto& second = SecondAt(seen);
        second.completed += 1;
        second.latency.Record(us);
        last_completion_ = std::max(last_completion_, seen);
      } else {
        unobserved_ += 1;
        SecondAt(seen).completed += 1;
      }
      if (s.r.server_ms >= 0) server_.Record(static_cast<int64_t>(s.r.server_ms * 1000));
    } else {
      failed_.fetch_add(1);
    }
    done_.fetch_add(1);
    if (s.worker >= 0) workers_[static_cast<size_t>(s.worker)]->release();
    done_cv_.notify_all();
  }

  // POST /neworder for slot `s` (retried with the same key if asked to). True when accepted.
  bool Place(runtime::HttpClient& client, Slot& s) {
    const std::string body = OrderBody(o_, s.r.index);
    const std::map<std::string, std::string> headers = {{"Idempotency-Key", run_id_ + "-" + std::to_string(s.r.index)}};
    const auto post_start = Clock::now();
    auto backoff = 100ms;
    std::string detail;
    while (true) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(s.deadline - Clock::now());
      auto res = client.Request("POST", "/neworder", body, headers, std::max(left, std::chrono::milliseconds(100)));
      if (res.ok() && res->status == 200) {
        int64_t id = 0;
        try {
          id = json::parse(res->body).at("order_id").get<int64_t>();
        } catch (const std::exception& e) {
          detail = std::string("POST /neworder: unreadable answer (") + e.what() + "): " + res->body.substr(0, 200);
          break;
        }
        const auto now = Clock::now();
        std::lock_guard lock(mu_);
        s.r.order_id = id;
        s.r.post_ms = MsBetween(post_start, now);
        post_.Record(UsBetween(post_start, now));
        return true;
      }
      detail = Describe("POST /neworder", res);
      const bool permanent = res.ok() && res->status >= 400 && res->status < 500 && res->status != 408 &&
                             res->status != 429;
      if (permanent || !o_.retry || Clock::now() + backoff >= s.deadline) break;
      std::this_thread::sleep_for(backoff);
      backoff = std::min(backoff * 2, std::chrono::milliseconds(2000));
    }
    std::lock_guard lock(mu_);
    s.r.detail = detail;
    Finish(s, Clock::now() >= s.deadline ? Outcome::kTimeout : Outcome::kHttpError, Clock::now());
    return false;
  }

  void ClosedLoopWorker(int w) {
    runtime::HttpClient client(host_, port_);
    auto& wake = *workers_[static_cast<size_t>(w)];
    while (true) {
      const auto now = Clock::now();
      if (SendingOver(now)) return;
      const int64_t index = next_.fetch_add(1);
      if (o_.orders > 0 && index >= o_.orders) return;
      Slot& s = NewSlot(index, now, w);
      if (!Place(client, s)) continue;
      // The event thread wakes us when this order ends; past its deadline the
      // final pass decides it.
      while (true) {
        {
          std::lock_guard lock(mu_);
          if (s.finished) break;
        }
        if (!wake.try_acquire_until(s.deadline)) break;
      }
      while (wake.try_acquire()) {
      }
    }
  }

  void OpenLoopSender() {
    runtime::HttpClient client(host_, port_);
    const auto period = std::chrono::duration<double>(1.0 / o_.rate);
    while (true) {
      const int64_t index = next_.fetch_add(1);
      if (o_.orders > 0 && index >= o_.orders) return;
      const auto due = start_ + std::chrono::duration_cast<Clock::duration>(period * static_cast<double>(index));
      if (SendingOver(due)) return;
      while (Clock::now() < due) {
        if (o_.stop != nullptr && o_.stop->load()) return;
        std::this_thread::sleep_until(std::min(due, Clock::now() + 100ms));
      }
      Slot& s = NewSlot(index, due, -1);
      Place(client, s);
    }
  }

  // Reads the event stream of final statuses; ours carry our run id in their key.
  void Events() {
    runtime::HttpClient client(host_, port_);
    int attempts = 0;
    while (!events_stop_.load() && attempts < 100) {
      ++attempts;
      auto status = client.ReadEvents(
          "/orders/events",
          [this](std::string_view event, std::string_view data) {
            if (event == "final") OnFinal(data);
            return true;
          },
          Clock::now() + std::chrono::hours(24), &events_stop_, [this] {
            std::lock_guard lock(mu_);
            events_open_ = true;
            done_cv_.notify_all();
          });
      if (events_stop_.load()) return;
      {
        std::lock_guard lock(mu_);
        events_error_ = status.ok() ? "the event stream ended" : status.error().message;
        done_cv_.notify_all();
      }
      std::this_thread::sleep_for(200ms);
    }
  }

  void OnFinal(std::string_view data) {
    const auto seen = Clock::now();
    auto j = json::parse(data, nullptr, false);
    if (!j.is_object()) return;
    const std::string key = j.value("idempotency_key", "");
    const std::string prefix = run_id_ + "-";
    if (key.rfind(prefix, 0) != 0) return;  // another client's order
    int64_t index = -1;
    try {
      index = std::stoll(key.substr(prefix.size()));
    } catch (...) {
      return;
    }
    std::lock_guard lock(mu_);
    if (index < 0 || index >= static_cast<int64_t>(slots_.size())) return;
    Slot& s = slots_[static_cast<size_t>(index)];
    if (!s.used || s.finished) return;
    const int status = j.value("status", 0);
    if (status != kStatusOk && status != kStatusNotOk) return;
    s.r.final_status = status;
    s.r.detail = j.value("detail", "");
    if (s.r.order_id == 0) s.r.order_id = j.value("order_id", int64_t{0});
    const int64_t accepted = j.value("accepted_at_ms", int64_t{0}), finished = j.value("finished_at_ms", int64_t{0});
    if (accepted > 0 && finished >= accepted) s.r.server_ms = static_cast<double>(finished - accepted);
    Finish(s, status == kStatusOk ? Outcome::kOk : Outcome::kNotOk, seen);
  }

  // Once a second: CPU sample; every progress_interval: a progress line.
  void Ticker(const std::function<void(const Progress&)>& on_progress) {
    auto cpu_before = ReadCpuTimes();
    auto last_progress = start_;
    int64_t last_done = 0;
    std::unique_lock lock(mu_);
    for (int64_t tick = 1; !ticker_stop_; ++tick) {
      const auto at = start_ + std::chrono::seconds(tick);
      if (done_cv_.wait_until(lock, at, [this] { return ticker_stop_; })) break;
      lock.unlock();
      const auto cpu_now = ReadCpuTimes();
      double cpu_percent = -1;
      if (cpu_before && cpu_now) {
        const double busy = cpu_now->busy_s - cpu_before->busy_s, idle = cpu_now->idle_s - cpu_before->idle_s;
        if (busy + idle > 0) cpu_percent = 100.0 * busy / (busy + idle);
      }
      cpu_before = cpu_now;
      lock.lock();
      if (cpu_by_second_.size() < static_cast<size_t>(tick)) cpu_by_second_.resize(static_cast<size_t>(tick), -1);
      cpu_by_second_[static_cast<size_t>(tick) - 1] = cpu_percent;
      const auto now = Clock::now();
      if (on_progress && now - last_progress >= o_.progress_interval) {
        Progress p;
        p.sent = sent_.load();
        p.done = done_.load();
        p.in_flight = p.sent - p.done;
        p.ok = ok_.load();
        p.not_ok = not_ok_.load();
        p.failed = failed_.load();
        p.elapsed_s = MsBetween(start_, now) / 1000.0;
        const double interval_s = MsBetween(last_progress, now) / 1000.0;
        p.rate = interval_s > 0 ? static_cast<double>(p.done - last_done) / interval_s : 0;
        p.avg_rate = p.elapsed_s > 0 ? static_cast<double>(p.done) / p.elapsed_s : 0;
        p.p50_ms = static_cast<double>(interval_.ValueAtPercentile(50)) / 1000.0;
        p.p99_ms = static_cast<double>(interval_.ValueAtPercentile(99)) / 1000.0;
        p.cpu_percent = cpu_percent;
        interval_.Reset();
        last_done = p.done;
        last_progress = now;
        lock.unlock();
        on_progress(p);
        lock.lock();
      }
    }
  }

  // Orders the stream did not announce before their deadline: one GET each.
  void FinalPass() {
    std::vector<Slot*> open;
    {
      std::lock_guard lock(mu_);
      for (auto& s : slots_) {
        if (s.used && !s.finished) open.push_back(&s);
      }
    }
    runtime::HttpClient client(host_, port_);
    int64_t checked = 0;
    for (Slot* s : open) {
      int64_t id;
      {
        std::lock_guard lock(mu_);
        id = s->r.order_id;
      }
      if (id != 0 && checked++ < kMaxFinalChecks) {
        auto res = client.Get("/orders/" + std::to_string(id), 5s);
        if (res.ok() && res->status == 200) {
          auto j = json::parse(res->body, nullptr, false);
          const int status = j.is_object() ? j.value("status", 0) : 0;
          std::lock_guard lock(mu_);
          s->r.final_status = status;
          if (status == kStatusOk || status == kStatusNotOk) {
            s->r.detail = j.value("detail", "");
            const auto a = ParseIsoMs(j.value("accepted_at", json())), f = ParseIsoMs(j.value("finished_at", json()));
            if (a && f) s->r.server_ms = static_cast<double>(*f - *a);
            Finish(*s, status == kStatusOk ? Outcome::kOk : Outcome::kNotOk, Clock::now(), /*observed=*/false);
            continue;
          }
        }
      }
      std::lock_guard lock(mu_);
      if (s->r.detail.empty()) {
        s->r.detail = id == 0 ? "never accepted" : "no final status within the timeout";
      }
      Finish(*s, Outcome::kTimeout, Clock::now());
    }
  }

  const LoadOptions& o_;
  const std::string host_;
  const int port_;
  const std::string run_id_;
  Clock::time_point start_;

  std::mutex mu_;
  std::condition_variable done_cv_;
  std::deque<Slot> slots_;
  std::deque<Second> seconds_;
  std::vector<double> cpu_by_second_;
  LatencyHistogram latency_, server_, post_, interval_;
  Clock::time_point last_completion_{};
  int64_t unobserved_ = 0;
  bool events_open_ = false;
  std::string events_error_;
  bool ticker_stop_ = false;
  std::atomic<bool> events_stop_{false};
  std::vector<std::unique_ptr<std::counting_semaphore<1 << 30>>> workers_;

  std::atomic<int64_t> next_{0}, sent_{0}, done_{0}, ok_{0}, not_ok_{0}, failed_{0};
};

LoadResult Run::Go(const std::function<void(const Progress&)>& on_progress) {
  LoadResult result;
  result.options = o_;
  result.machine = CollectMachineInfo();

  // The event stream first, so that no order can end unseen.
  std::thread events([this] { Events(); });
  {
    std::unique_lock lock(mu_);
    done_cv_.wait_for(lock, 10s, [this] { return events_open_; });
    if (!events_open_) {
      result.error = "the order service's event stream GET /orders/events did not open (" +
                     (events_error_.empty() ? std::string("no answer") : events_error_) +
                     "): is the system up, and new enough? Start it with 'make up-detached' or pass --order-url";
      lock.unlock();
      events_stop_.store(true);
      events.join();
      return result;
    }
  }

  const auto cpu_start = ReadCpuTimes();
  start_ = Clock::now();
  std::thread ticker([this, &on_progress] { Ticker(on_progress); });
  std::vector<std::thread> threads;
  if (o_.rate > 0) {
    for (int i = 0; i < o_.connections; ++i) threads.emplace_back([this] { OpenLoopSender(); });
  } else {
    int n = o_.concurrency;
    if (o_.orders > 0) n = static_cast<int>(std::min<int64_t>(n, o_.orders));
    for (int i = 0; i < n; ++i) workers_.push_back(std::make_unique<std::counting_semaphore<1 << 30>>(0));
    for (int i = 0; i < n; ++i) threads.emplace_back([this, i] { ClosedLoopWorker(i); });
  }
  for (auto& t : threads) t.join();
  const auto sending_end = Clock::now();
  // Follow what is in flight until each order's deadline.
  {
    std::unique_lock lock(mu_);
    while (true) {
      Clock::time_point latest{};
      bool open = false;
      for (const auto& s : slots_) {
        if (s.used && !s.finished) {
          open = true;
          latest = std::max(latest, s.deadline);
        }
      }
      if (!open || Clock::now() >= latest) break;
      done_cv_.wait_until(lock, std::min(latest, Clock::now() + 200ms));
    }
  }
  FinalPass();
  const auto end = Clock::now();
  const auto cpu_end = ReadCpuTimes();
  events_stop_.store(true);
  {
    std::lock_guard lock(mu_);
    ticker_stop_ = true;
    done_cv_.notify_all();
  }
  ticker.join();
  events.join();

  std::lock_guard lock(mu_);
  for (const auto& s : slots_) {
    if (!s.used) continue;
    result.orders.push_back(s.r);
    switch (s.r.outcome) {
      case Outcome::kOk: ++result.ok; break;
      case Outcome::kNotOk: ++result.not_ok; break;
      case Outcome::kHttpError: ++result.http_errors; break;
      case Outcome::kTimeout: ++result.timeouts; break;
    }
  }
  result.sent = static_cast<int64_t>(result.orders.size());
  result.completed_unobserved = unobserved_;
  result.stopped_early = o_.stop != nullptr && o_.stop->load();
  const auto last = result.completed() > 0 && last_completion_ > start_ ? last_completion_ : end;
  result.wall_s = MsBetween(start_, last) / 1000.0;
  result.sagas_per_s = result.wall_s > 0 ? static_cast<double>(result.completed()) / result.wall_s : 0;
  const double sending_s = MsBetween(start_, sending_end) / 1000.0;
  result.sent_per_s = sending_s > 0 ? static_cast<double>(result.sent) / sending_s : 0;
  if (cpu_start && cpu_end) {
    result.cpu_busy_s = cpu_end->busy_s - cpu_start->busy_s;
    if (result.completed() > 0) result.cpu_ms_per_saga = result.cpu_busy_s * 1000.0 / static_cast<double>(result.completed());
  }
  result.latency = StatsOf(latency_);
  result.server_latency = StatsOf(server_);
  result.post_latency = StatsOf(post_);
  for (size_t i = 0; i < seconds_.size(); ++i) {
    TimelinePoint p;
    p.t_s = static_cast<double>(i + 1);
    p.sent = seconds_[i].sent;
    p.completed = seconds_[i].completed;
    p.p50_ms = static_cast<double>(seconds_[i].latency.ValueAtPercentile(50)) / 1000.0;
    p.p99_ms = static_cast<double>(seconds_[i].latency.ValueAtPercentile(99)) / 1000.0;
    p.max_ms = static_cast<double>(seconds_[i].latency.max()) / 1000.0;
    p.cpu_percent = i < cpu_by_second_.size() ? cpu_by_second_[i] : -1;
    result.timeline.push_back(p);
  }
  return result;
}

json StatsJson(const LatencyStats& s) {
  return {{"count", s.count}, {"min", s.min}, {"mean", s.mean}, {"p50", s.p50},  {"p95", s.p95},
          {"p99", s.p99},     {"p99_9", s.p999}, {"max", s.max}};
}

}  // namespace

std::string_view ToString(Outcome outcome) {
  switch (outcome) {
    case Outcome::kOk: return "ok";
    case Outcome::kNotOk: return "not_ok";
    case Outcome::kHttpError: return "http_error";
    case Outcome::kTimeout: return "timeout";
  }
  return "unknown";
}

LatencyStats StatsOf(const LatencyHistogram& h) {
  LatencyStats s;
  s.count = h.count();
  if (s.count == 0) return s;
  auto ms = [](int64_t us) { return static_cast<double>(us) / 1000.0; };
  s.min = ms(h.min());
  s.max = ms(h.max());
  s.mean = h.mean() / 1000.0;
  s.p50 = ms(h.ValueAtPercentile(50));
  s.p95 = ms(h.ValueAtPercentile(95));
  s.p99 = ms(h.ValueAtPercentile(99));
  s.p999 = ms(h.ValueAtPercentile(99.9));
  return s;
}

std::optional<std::string> Validate(const LoadOptions& o) {
  if (!ParseLoopbackUrl(o.order_url)) {
    return "--order-url must look like http://127.0.0.1:PORT or http://localhost:PORT (the driver only talks to "
           "this machine), got '" + o.order_url + "'";
  }
  if (o.orders < 0) return "--orders must be >= 0";
  if (o.duration.count() < 0) return "--duration-s must be >= 0";
  if (o.orders == 0 && o.duration.count() == 0) return "give --orders N, --duration-s T, or both";
  if (o.duration > std::chrono::hours(24)) return "--duration-s must be at most 86400";
  if (o.warmup.count() < 0 || o.warmup > std::chrono::hours(1)) return "--warmup-s must be from 0 to 3600";
  if (o.concurrency < 1 || o.concurrency > 10'000) return "--concurrency must be from 1 to 10000";
  if (o.rate < 0 || o.rate > 1'000'000) return "--rate must be from 0 (closed loop) to 1000000 per second";
  if (o.connections < 1 || o.connections > 4'096) return "--connections must be from 1 to 4096";
  if (o.timeout.count() < 1) return "--timeout-s must be positive";
  if (o.first_item_id < 0) return "--first-item must be >= 0";
  if (o.items < 1) return "--items must be at least 1";
  if (o.items_per_order < 1 || o.items_per_order > 1000) return "--items-per-order must be from 1 to 1000";
  if (o.items_per_order > o.items) {
    return "--items-per-order (" + std::to_string(o.items_per_order) + ") must not exceed --items (" +
           std::to_string(o.items) + "): the items of one order are distinct";
  }
  if (o.max_quantity < 1) return "--max-quantity must be at least 1";
  if (o.progress_interval.count() < 1) return "progress_interval must be positive";
  return std::nullopt;
}

MachineInfo CollectMachineInfo() {
  MachineInfo m;
  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) == 0) m.hostname = host;
  m.nproc = static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN));
  std::ifstream cpuinfo("/proc/cpuinfo");
  for (std::string line; std::getline(cpuinfo, line);) {
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      if (colon != std::string::npos) m.cpu_model = line.substr(line.find_first_not_of(" \t", colon + 1));
      break;
    }
  }
  if (m.cpu_model.empty()) m.cpu_model = "unknown";
  utsname u{};
  if (uname(&u) == 0) m.kernel = std::string(u.sysname) + " " + u.release;
  m.date = IsoUtcNow();
  return m;
}

std::optional<CpuTimes> ReadCpuTimes() {
  std::ifstream stat("/proc/stat");
  std::string cpu;
  // user nice system idle iowait irq softirq steal (guest time is inside user)
  int64_t v[8] = {};
  if (!(stat >> cpu) || cpu != "cpu") return std::nullopt;
  for (auto& x : v) {
    if (!(stat >> x)) return std::nullopt;
  }
  const double tick = static_cast<double>(sysconf(_SC_CLK_TCK));
  if (tick <= 0) return std::nullopt;
  CpuTimes t;
  t.busy_s = static_cast<double>(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / tick;
  t.idle_s = static_cast<double>(v[3] + v[4]) / tick;
  return t;
}

LoadResult RunLoad(const LoadOptions& options, const std::function<void(const Progress&)>& on_progress) {
  if (auto error = Validate(options)) {
    LoadResult result;
    result.options = options;
    result.machine = CollectMachineInfo();
    result.error = *error;
    return result;
  }
  const auto [host, port] = *ParseLoopbackUrl(options.order_url);
  {
    runtime::HttpClient probe(host, port);
    auto res = probe.Get("/", 5s);
    if (!res.ok() || res->status != 200) {
      LoadResult result;
      result.options = options;
      result.machine = CollectMachineInfo();
      result.error = "the order service does not answer at " + options.order_url + " (" + Describe("GET /", res) +
                     "): is the system up? Start it with 'make up-detached' or pass --order-url";
      return result;
    }
  }
  Run run(options, host, port);
  return run.Go(on_progress);
}

std::string FormatProgress(const Progress& p, const LoadOptions& o) {
  std::ostringstream out;
  out << "bench: " << Fixed(p.elapsed_s, 1) << " s  sent " << p.sent;
  if (o.orders > 0) out << "/" << o.orders;
  out << "  done " << p.done << "  in flight " << p.in_flight << "  " << Fixed(p.rate, 1) << " sagas/s (avg "
      << Fixed(p.avg_rate, 1) << ")  p50 " << Fixed(p.p50_ms, 1) << " ms  p99 " << Fixed(p.p99_ms, 1) << " ms";
  if (p.cpu_percent >= 0) out << "  cpu " << Fixed(p.cpu_percent, 0) << "%";
  if (p.not_ok + p.failed > 0) out << "  [not ok " << p.not_ok << ", failed " << p.failed << "]";
  return out.str();
}

std::string FormatReport(const LoadResult& r) {
  const auto& o = r.options;
  const auto& m = r.machine;
  std::ostringstream out;
  out << "sagaflow bench against " << o.order_url << "\n";
  out << "  machine   " << m.hostname << ", " << m.nproc << " CPUs, " << m.cpu_model << "\n";
  out << "            " << m.kernel << ", " << m.date << "\n";
  out << "  load      ";
  if (o.rate > 0) {
    out << "open loop, " << Fixed(o.rate, 1) << " orders/s over " << o.connections << " connections";
  } else {
    out << "closed loop, concurrency " << o.concurrency;
  }
  if (o.orders > 0) out << ", " << o.orders << " orders";
  if (o.duration.count() > 0) out << ", " << Fixed(static_cast<double>(o.duration.count()) / 1000.0, 1) << " s";
  out << ", timeout " << Fixed(static_cast<double>(o.timeout.count()) / 1000.0, 1) << " s per order";
  if (o.warmup.count() > 0) out << ", after " << Fixed(static_cast<double>(o.warmup.count()) / 1000.0, 1) << " s of warm-up";
  out << "\n";
  out << "            items " << o.first_item_id << ".." << (o.first_item_id + o.items - 1) << ", "
      << o.items_per_order << " per order, quantity 1.." << o.max_quantity << ", seed " << o.seed
      << (o.retry ? ", POST retried" : "") << "\n";
  if (!r.error.empty()) {
    out << "\n  not run: " << r.error << "\n";
    return out.str();
  }
  out << "\n";
  char line[200];
  auto row = [&](const char* name, int64_t n, const std::string& extra = "") {
    std::snprintf(line, sizeof(line), "  %-18s %8lld%s\n", name, static_cast<long long>(n), extra.c_str());
    out << line;
  };
  row("orders sent", r.sent, r.stopped_early ? "   (stopped early)" : "");
  row("completed OK", r.ok);
  row("completed NOT OK", r.not_ok);
  row("failed", r.failed(),
      "   (HTTP errors " + std::to_string(r.http_errors) + ", timeouts " + std::to_string(r.timeouts) + ")");
  if (r.completed_unobserved > 0) {
    row("ends not streamed", r.completed_unobserved, "   (completed, found by a final GET; no latency)");
  }
  std::snprintf(line, sizeof(line), "  %-18s %8.2f s\n", "wall time", r.wall_s);
  out << line;
  std::snprintf(line, sizeof(line), "  %-18s %8.1f sagas/s (completed / wall time); sent %.1f orders/s\n",
                "throughput", r.sagas_per_s, r.sent_per_s);
  out << line;
  if (r.cpu_ms_per_saga >= 0) {
    std::snprintf(line, sizeof(line), "  %-18s %8.2f ms per completed saga (%.1f CPU-s busy, all %d cores, all processes)\n",
                  "machine CPU", r.cpu_ms_per_saga, r.cpu_busy_s, m.nproc);
    out << line;
  }
  out << "\n";
  std::snprintf(line, sizeof(line), "  %-28s %7s %8s %8s %8s %8s %8s %8s %8s\n", "latency (ms)", "count", "min", "p50",
                "p95", "p99", "p99.9", "max", "mean");
  out << line;
  auto stats = [&](const char* name, const LatencyStats& s) {
    std::snprintf(line, sizeof(line), "  %-28s %7lld %8.1f %8.1f %8.1f %8.1f %8.1f %8.1f %8.1f\n", name,
                  static_cast<long long>(s.count), s.min, s.p50, s.p95, s.p99, s.p999, s.max, s.mean);
    out << line;
  };
  stats(o.rate > 0 ? "end-to-end (due->final)" : "end-to-end (POST->final)", r.latency);
  stats("server (accepted->finished)", r.server_latency);
  stats("POST /neworder", r.post_latency);

  int shown = 0;
  for (const auto& order : r.orders) {
    if (order.outcome != Outcome::kHttpError && order.outcome != Outcome::kTimeout) continue;
    if (shown++ == 0) out << "\n  first failures:\n";
    out << "    #" << order.index << " order " << order.order_id << " " << ToString(order.outcome) << ": "
        << order.detail << "\n";
    if (shown == 5) break;
  }
  return out.str();
}

std::string ToJson(const LoadResult& r) {
  const auto& o = r.options;
  json timeline = json::array();
  for (const auto& p : r.timeline) {
    timeline.push_back({{"t_s", p.t_s},
                        {"sent", p.sent},
                        {"completed", p.completed},
                        {"p50_ms", p.p50_ms},
                        {"p99_ms", p.p99_ms},
                        {"max_ms", p.max_ms},
                        {"cpu_percent", p.cpu_percent}});
  }
  json out = {
      {"machine",
       {{"hostname", r.machine.hostname},
        {"nproc", r.machine.nproc},
        {"cpu_model", r.machine.cpu_model},
        {"kernel", r.machine.kernel},
        {"date", r.machine.date}}},
      {"options",
       {{"order_url", o.order_url},
        {"mode", o.rate > 0 ? "open" : "closed"},
        {"orders", o.orders},
        {"duration_s", static_cast<double>(o.duration.count()) / 1000.0},
        {"concurrency", o.concurrency},
        {"rate", o.rate},
        {"connections", o.connections},
        {"timeout_s", static_cast<double>(o.timeout.count()) / 1000.0},
        {"first_item_id", o.first_item_id},
        {"items", o.items},
        {"items_per_order", o.items_per_order},
        {"max_quantity", o.max_quantity},
        {"seed", o.seed},
        {"retry", o.retry},
        {"warmup_s", static_cast<double>(o.warmup.count()) / 1000.0}}},
      {"error", r.error},
      {"sent", r.sent},
      {"completed_ok", r.ok},
      {"completed_not_ok", r.not_ok},
      {"completed_unobserved", r.completed_unobserved},
      {"failed", r.failed()},
      {"http_errors", r.http_errors},
      {"timeouts", r.timeouts},
      {"stopped_early", r.stopped_early},
      {"wall_s", r.wall_s},
      {"sagas_per_s", r.sagas_per_s},
      {"sent_per_s", r.sent_per_s},
      {"machine_cpu_busy_s", r.cpu_busy_s},
      {"machine_cpu_ms_per_saga", r.cpu_ms_per_saga},
      {"latency_ms", StatsJson(r.latency)},
      {"server_latency_ms", StatsJson(r.server_latency)},
      {"post_latency_ms", StatsJson(r.post_latency)},
      {"timeline", timeline},
  };
  if (r.sent <= kMaxOrdersInJson) {
    json orders = json::array();
    for (const auto& order : r.orders) {
      orders.push_back({{"index", order.index},
                        {"order_id", order.order_id},
                        {"outcome", ToString(order.outcome)},
                        {"final_status", order.final_status},
                        {"latency_ms", order.latency_ms},
                        {"server_ms", order.server_ms},
                        {"post_ms", order.post_ms},
                        {"detail", order.detail}});
    }
    out["orders"] = orders;
  }
  return out.dump(2) + "\n";
}

namespace {

std::string Escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '&': out += "&amp;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

// A "nice" axis maximum: 1, 2 or 5 times a power of ten, at least `v`.
double NiceMax(double v) {
  if (v <= 0) return 1;
  const double p = std::pow(10.0, std::floor(std::log10(v)));
  for (double m : {1.0, 2.0, 5.0, 10.0}) {
    if (m * p >= v) return m * p;
  }
  return 10 * p;
}

struct Series {
  std::string name;
  std::string color;
  std::vector<double> y;  // one per timeline point; < 0 = no value
};

// One panel: a frame, y ticks, x ticks, and a polyline per series.
void Panel(std::ostringstream& svg, double top, double height, const std::string& title, const std::string& unit,
           const std::vector<double>& x, const std::vector<Series>& series, double x_max) {
  const double left = 70, width = 800;
  double y_max = 0;
  for (const auto& s : series) {
    for (double v : s.y) y_max = std::max(y_max, v);
  }
  y_max = NiceMax(y_max);
  svg << "<text x=\"" << left << "\" y=\"" << top - 8 << "\" font-weight=\"bold\">" << Escape(title) << "</text>\n";
  svg << "<rect x=\"" << left << "\" y=\"" << top << "\" width=\"" << width << "\" height=\"" << height
      << "\" fill=\"none\" stroke=\"#999\"/>\n";
  for (int i = 0; i <= 5; ++i) {
    const double v = y_max * i / 5, y = top + height - height * i / 5;
    svg << "<line x1=\"" << left << "\" x2=\"" << left + width << "\" y1=\"" << y << "\" y2=\"" << y
        << "\" stroke=\"#eee\"/>\n";
    svg << "<text x=\"" << left - 6 << "\" y=\"" << y + 4 << "\" text-anchor=\"end\">" << Fixed(v, v < 10 ? 1 : 0)
        << "</text>\n";
  }
  svg << "<text x=\"14\" y=\"" << top + height / 2 << "\" transform=\"rotate(-90 14 " << top + height / 2
      << ")\" text-anchor=\"middle\">" << Escape(unit) << "</text>\n";
  for (int i = 0; i <= 5; ++i) {
    const double t = x_max * i / 5, px = left + width * i / 5;
    svg << "<text x=\"" << px << "\" y=\"" << top + height + 14 << "\" text-anchor=\"middle\">" << Fixed(t, 0)
        << " s</text>\n";
  }
  double legend_x = left + width - 10;
  for (auto it = series.rbegin(); it != series.rend(); ++it) {
    svg << "<text x=\"" << legend_x << "\" y=\"" << top - 8 << "\" text-anchor=\"end\" fill=\"" << it->color << "\">"
        << Escape(it->name) << "</text>\n";
    legend_x -= 9.0 * static_cast<double>(it->name.size()) + 16;
  }
  for (const auto& s : series) {
    svg << "<polyline fill=\"none\" stroke-width=\"1.5\" stroke=\"" << s.color << "\" points=\"";
    for (size_t i = 0; i < x.size() && i < s.y.size(); ++i) {
      if (s.y[i] < 0) continue;
      svg << Fixed(left + width * x[i] / x_max, 1) << "," << Fixed(top + height - height * s.y[i] / y_max, 1) << " ";
    }
    svg << "\"/>\n";
  }
}

}  // namespace

std::string ToSvgChart(const LoadResult& r) {
  std::vector<double> x;
  Series completed{"completed sagas/s", "#1f77b4", {}}, sent{"sent orders/s", "#aaaaaa", {}};
  Series p50{"p50", "#2ca02c", {}}, p99{"p99", "#d62728", {}}, cpu{"machine CPU %", "#9467bd", {}};
  for (const auto& p : r.timeline) {
    x.push_back(p.t_s);
    completed.y.push_back(static_cast<double>(p.completed));
    sent.y.push_back(static_cast<double>(p.sent));
    p50.y.push_back(p.completed > 0 ? p.p50_ms : -1);
    p99.y.push_back(p.completed > 0 ? p.p99_ms : -1);
    cpu.y.push_back(p.cpu_percent);
  }
  double x_max = 1;
  if (!x.empty()) {
    const double step = NiceMax(x.back() / 5);
    x_max = std::max(step, std::ceil(x.back() / step) * step);
  }
  std::ostringstream svg;
  svg << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"900\" height=\"760\" font-family=\"sans-serif\" "
         "font-size=\"12\">\n<rect width=\"900\" height=\"760\" fill=\"white\"/>\n";
  const auto& o = r.options;
  std::string what = o.rate > 0 ? "open loop " + Fixed(o.rate, 0) + "/s" : "closed loop, concurrency " +
                                                                              std::to_string(o.concurrency);
  svg << "<text x=\"70\" y=\"24\" font-size=\"15\" font-weight=\"bold\">sagaflow bench: " << Escape(what) << ", "
      << r.completed() << " sagas, " << Fixed(r.sagas_per_s, 1) << "/s, p50 " << Fixed(r.latency.p50, 1)
      << " ms, p99 " << Fixed(r.latency.p99, 1) << " ms</text>\n";
  svg << "<text x=\"70\" y=\"42\" fill=\"#555\">" << Escape(r.machine.hostname + ", " +
                                                              std::to_string(r.machine.nproc) + " CPUs, " +
                                                              r.machine.date)
      << "</text>\n";
  Panel(svg, 80, 180, "throughput (per second of the run)", "per second", x, {sent, completed}, x_max);
  Panel(svg, 320, 200, "end-to-end latency of the sagas completed in each second", "ms", x, {p50, p99}, x_max);
  Panel(svg, 580, 130, "machine CPU busy (100 % = every core)", "%", x, {cpu}, x_max);
  svg << "</svg>\n";
  return svg.str();
}

int RunBenchCommand(LoadOptions options, const std::string& json_path, const std::string& chart_path) {
  // First SIGINT/SIGTERM: stop placing orders and report; a second one kills.
  g_stop_requested.store(false);
  struct sigaction action {};
  action.sa_handler = OnStopSignal;
  action.sa_flags = SA_RESETHAND;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
  options.stop = &g_stop_requested;

  if (options.warmup.count() > 0) {
    // The same load on other orders, for the warm-up's length; its figures are dropped.
    LoadOptions warm = options;
    warm.orders = 0;
    warm.duration = options.warmup;
    warm.warmup = std::chrono::milliseconds(0);
    warm.seed = options.seed + 0x9e3779b97f4a7c15ULL;
    std::cerr << "warm-up: " << Fixed(static_cast<double>(warm.duration.count()) / 1000.0, 1)
              << " s of the same load, not counted\n";
    const LoadResult w =
        RunLoad(warm, [&warm](const Progress& p) { std::cerr << "warm-up " << FormatProgress(p, warm) << "\n"; });
    if (!w.error.empty()) {
      std::cerr << "sagaflow bench: " << w.error << "\n";
      return 2;
    }
    std::cerr << "warm-up done: " << w.completed() << " sagas, " << Fixed(w.sagas_per_s, 1) << " sagas/s, "
              << w.failed() << " failed\n";
    if (g_stop_requested.load()) return 1;
  }
  const LoadResult result =
      RunLoad(options, [&options](const Progress& p) { std::cerr << FormatProgress(p, options) << "\n"; });
  if (!result.error.empty()) {
    std::cerr << "sagaflow bench: " << result.error << "\n";
    return 2;
  }
  std::cout << FormatReport(result) << std::flush;
  auto write = [](const std::string& path, const std::string& text) {
    std::ofstream file(path);
    file << text;
    file.close();
    if (!file) {
      std::cerr << "sagaflow bench: cannot write " << path << "\n";
      return false;
    }
    std::cout << "\n  written: " << path << "\n";
    return true;
  };
  if (!json_path.empty() && !write(json_path, ToJson(result))) return 2;
  if (!chart_path.empty() && !write(chart_path, ToSvgChart(result))) return 2;
  return result.failed() == 0 ? 0 : 1;
}

}  // namespace sagaflow::bench
