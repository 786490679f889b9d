#include "sagaflow/bench/load_driver.hpp"

#include <httplib.h>
#include <signal.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <iostream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <semaphore>
#include <sstream>
#include <thread>

namespace sagaflow::bench {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr int kStatusOk = 3;
constexpr int kStatusNotOk = 4;
constexpr auto kConnectTimeout = std::chrono::seconds(5);

double MsBetween(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double, std::milli>(to - from).count();
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

// "http://host:port" (trailing "/" allowed) -> the same without the slash; nullopt otherwise.
std::optional<std::string> NormalizeUrl(const std::string& url) {
  const std::string scheme = "http://";
  if (url.rfind(scheme, 0) != 0) return std::nullopt;
  std::string authority = url.substr(scheme.size());
  if (!authority.empty() && authority.back() == '/') authority.pop_back();
  if (authority.empty() || authority.find_first_of("/?#@ ") != std::string::npos) return std::nullopt;
  return scheme + authority;
}

std::string DescribeHttpFailure(const char* what, const httplib::Result& res) {
  if (!res) return std::string(what) + ": no answer (" + httplib::to_string(res.error()) + " error)";
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
  auto uniform = [&rng](int64_t lo, int64_t hi) {
    return std::uniform_int_distribution<int64_t>(lo, hi)(rng);
  };
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
  json body = {{"order_id", 0},      {"user_id", uniform(1, 1000)}, {"payment", uniform(1, 2)},
               {"notification", 1},  {"created_at", now},           {"approved_at", now},
               {"sum", sum},         {"items", items},              {"status", 1},
               {"detail", ""}};
  return body.dump();
}

// Shared between the workers and the progress reporter.
struct Counters {
  std::atomic<int64_t> next{0};  // next order index to take
  std::atomic<int64_t> sent{0};
  std::atomic<int64_t> done{0};
  std::atomic<int64_t> ok{0};
  std::atomic<int64_t> not_ok{0};
  std::atomic<int64_t> failed{0};
};

// Bounds the HTTP requests in flight across all workers (LoadOptions::connections).
using Slots = std::counting_semaphore<10'000>;

class Worker {
 public:
  Worker(const LoadOptions& options, const std::string& base_url, const std::string& run_id, Slots& slots)
      : options_(options), client_(base_url), run_id_(run_id), slots_(slots) {
    // One connection per request: the order service's HTTP server (cpp-httplib
    // defaults) keeps a pool thread on every idle keep-alive connection, so
    // keep-alive clients beyond its pool queue behind each other.
    client_.set_keep_alive(false);
    client_.set_connection_timeout(kConnectTimeout);
  }

  void Run(Counters& counters, std::vector<OrderResult>& results) {
    while (options_.stop == nullptr || !options_.stop->load()) {
      const int64_t index = counters.next.fetch_add(1);
      if (index >= options_.orders) break;
      counters.sent.fetch_add(1);
      OrderResult r = PlaceAndFollow(index);
      switch (r.outcome) {
        case Outcome::kOk: counters.ok.fetch_add(1); break;
        case Outcome::kNotOk: counters.not_ok.fetch_add(1); break;
        default: counters.failed.fetch_add(1); break;
      }
      results[static_cast<size_t>(index)] = std::move(r);  // each index belongs to one worker
      counters.done.fetch_add(1);
    }
  }

 private:
  // Sets the read timeout to what is left of the order's time (at least 100 ms).
  void SetTimeouts(Clock::time_point deadline) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    client_.set_read_timeout(std::max(left, std::chrono::milliseconds(100)));
    client_.set_write_timeout(std::max(left, std::chrono::milliseconds(100)));
  }

  OrderResult PlaceAndFollow(int64_t index) {
    OrderResult r;
    r.index = index;
    const std::string body = OrderBody(options_, index);
    const httplib::Headers headers = {{"Idempotency-Key", run_id_ + "-" + std::to_string(index)}};
    const auto start = Clock::now();
    const auto deadline = start + options_.timeout;

    // POST /neworder, retried (same Idempotency-Key) only if asked to.
    auto backoff = std::chrono::milliseconds(100);
    while (true) {
      auto res =
          Limited(deadline, [&] { return client_.Post("/neworder", headers, body, "application/json"); });
      if (res && res->status == 200) {
        try {
          r.order_id = json::parse(res->body).at("order_id").get<int64_t>();
        } catch (const std::exception& e) {
          r.outcome = Outcome::kHttpError;
          r.detail = std::string("POST /neworder: unreadable answer (") + e.what() + "): " +
                     res->body.substr(0, 200);
          return r;
        }
        break;
      }
      r.detail = DescribeHttpFailure("POST /neworder", res);
      // 4xx (but 408/429) means this request will never succeed.
      const bool permanent =
          res && res->status >= 400 && res->status < 500 && res->status != 408 && res->status != 429;
      if (permanent || !options_.retry) {
        r.outcome = !res && Clock::now() >= deadline ? Outcome::kTimeout : Outcome::kHttpError;
        return r;
      }
      if (Clock::now() + backoff >= deadline) {
        r.outcome = Outcome::kTimeout;
        r.detail = "no order accepted within the timeout; last error: " + r.detail;
        return r;
      }
      std::this_thread::sleep_for(backoff);
      backoff = std::min(backoff * 2, std::chrono::milliseconds(2000));
    }
    const auto accepted = Clock::now();
    r.post_ms = MsBetween(start, accepted);

    // Poll until final. 404 is normal for a moment: the order becomes readable
    // once the order service has applied its own committed changelog record.
    const std::string path = "/orders/" + std::to_string(r.order_id);
    std::string last_error;
    while (true) {
      const auto now = Clock::now();
      if (now >= deadline) {
        r.outcome = Outcome::kTimeout;
        r.detail = "no final status within " + std::to_string(options_.timeout.count()) +
                   " ms (last status " + std::to_string(r.final_status) +
                   (last_error.empty() ? "" : ", last error: " + last_error) + ")";
        return r;
      }
      auto wait = std::chrono::duration_cast<std::chrono::milliseconds>((now - start) / 20);
      wait = std::clamp(wait, options_.poll_min, options_.poll_max);
      std::this_thread::sleep_until(std::min(now + wait, deadline));
      auto res = Limited(deadline, [&] { return client_.Get(path); });
      ++r.polls;
      if (!res || res->status != 200) {
        if (!res || res->status != 404) last_error = DescribeHttpFailure(("GET " + path).c_str(), res);
        continue;
      }
      const auto seen = Clock::now();
      json order;
      try {
        order = json::parse(res->body);
        r.final_status = order.at("status").get<int>();
      } catch (const std::exception& e) {
        last_error = std::string("GET ") + path + ": unreadable answer (" + e.what() + ")";
        continue;
      }
      if (r.final_status != kStatusOk && r.final_status != kStatusNotOk) continue;
      r.outcome = r.final_status == kStatusOk ? Outcome::kOk : Outcome::kNotOk;
      r.latency_ms = MsBetween(start, seen);
      r.detail = order.value("detail", "");
      const auto accepted_at = ParseIsoMs(order.value("accepted_at", json()));
      const auto finished_at = ParseIsoMs(order.value("finished_at", json()));
      if (accepted_at && finished_at) r.server_ms = static_cast<double>(*finished_at - *accepted_at);
      return r;
    }
  }

  // Runs `request` once a slot is free; a request that cannot start before
  // `deadline` comes back as a connection timeout.
  template <class Request>
  httplib::Result Limited(Clock::time_point deadline, Request&& request) {
    if (!slots_.try_acquire_until(deadline)) {
      return httplib::Result(nullptr, httplib::Error::ConnectionTimeout);
    }
    SetTimeouts(deadline);
    httplib::Result res = request();
    slots_.release();
    return res;
  }

  const LoadOptions& options_;
  httplib::Client client_;
  const std::string& run_id_;
  Slots& slots_;
};

std::string RunId() {
  std::random_device rd;
  char buf[32];
  std::snprintf(buf, sizeof(buf), "bench-%08x%08x", rd(), rd());
  return buf;
}

json StatsJson(const LatencyStats& s) {
  return {{"count", s.count}, {"min", s.min}, {"mean", s.mean}, {"p50", s.p50},
          {"p90", s.p90},     {"p99", s.p99}, {"max", s.max}};
}

std::string Fixed(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", decimals, v);
  return buf;
}

std::atomic<bool> g_stop_requested{false};

extern "C" void OnStopSignal(int) { g_stop_requested.store(true); }

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

std::optional<std::string> Validate(const LoadOptions& o) {
  if (!NormalizeUrl(o.order_url)) {
    return "--order-url must look like http://HOST:PORT (no path; https is not supported), got '" +
           o.order_url + "'";
  }
  if (o.orders < 1) return "--orders must be at least 1";
  if (o.concurrency < 1 || o.concurrency > 10'000) return "--concurrency must be from 1 to 10000";
  if (o.connections < 1 || o.connections > 10'000) return "--connections must be from 1 to 10000";
  if (o.timeout.count() < 1) return "--timeout-s must be positive";
  if (o.first_item_id < 0) return "--first-item must be >= 0";
  if (o.items < 1) return "--items must be at least 1";
  if (o.items_per_order < 1 || o.items_per_order > 1000) return "--items-per-order must be from 1 to 1000";
  if (o.items_per_order > o.items) {
    return "--items-per-order (" + std::to_string(o.items_per_order) + ") must not exceed --items (" +
           std::to_string(o.items) + "): the items of one order are distinct";
  }
  if (o.max_quantity < 1) return "--max-quantity must be at least 1";
  if (o.poll_min.count() < 1 || o.poll_max < o.poll_min) return "poll bounds: need 1 <= poll_min <= poll_max";
  if (o.progress_interval.count() < 1) return "progress_interval must be positive";
  return std::nullopt;
}

LatencyStats ComputeLatencyStats(std::vector<double> v) {
  LatencyStats s;
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  s.count = static_cast<int64_t>(v.size());
  s.min = v.front();
  s.max = v.back();
  double total = 0;
  for (double x : v) total += x;
  s.mean = total / static_cast<double>(v.size());
  // Nearest rank: the smallest value with at least p% of the values <= it.
  auto rank = [&v](double p) {
    const auto k = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(v.size())));
    return v[std::clamp<size_t>(k, 1, v.size()) - 1];
  };
  s.p50 = rank(50);
  s.p90 = rank(90);
  s.p99 = rank(99);
  return s;
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

LoadResult RunLoad(const LoadOptions& options, const std::function<void(const Progress&)>& on_progress) {
  LoadResult result;
  result.options = options;
  result.machine = CollectMachineInfo();
  if (auto error = Validate(options)) {
    result.error = *error;
    return result;
  }
  const std::string base_url = *NormalizeUrl(options.order_url);
  {
    httplib::Client probe(base_url);
    probe.set_connection_timeout(kConnectTimeout);
    probe.set_read_timeout(std::chrono::seconds(5));
    auto res = probe.Get("/");
    if (!res || res->status != 200) {
      result.error = "the order service does not answer at " + base_url + " (" +
                     DescribeHttpFailure("GET /", res) +
                     "): is the system up? Start it with 'make up-detached' or pass --order-url";
      return result;
    }
  }

  const std::string run_id = RunId();
  Counters counters;
  Slots slots(options.connections);
  std::vector<OrderResult> results(static_cast<size_t>(options.orders));
  const auto start = Clock::now();

  std::mutex mutex;
  std::condition_variable finished_cv;
  bool finished = false;
  std::thread reporter;
  if (on_progress) {
    reporter = std::thread([&] {
      int64_t last_done = 0;
      auto last = start;
      std::unique_lock lock(mutex);
      while (!finished_cv.wait_for(lock, options.progress_interval, [&] { return finished; })) {
        const auto now = Clock::now();
        Progress p;
        p.sent = counters.sent.load();
        p.done = counters.done.load();
        p.in_flight = p.sent - p.done;
        p.ok = counters.ok.load();
        p.not_ok = counters.not_ok.load();
        p.failed = counters.failed.load();
        p.elapsed_s = MsBetween(start, now) / 1000.0;
        const double interval_s = MsBetween(last, now) / 1000.0;
        p.rate = interval_s > 0 ? static_cast<double>(p.done - last_done) / interval_s : 0;
        p.avg_rate = p.elapsed_s > 0 ? static_cast<double>(p.done) / p.elapsed_s : 0;
        last_done = p.done;
        last = now;
        lock.unlock();
        on_progress(p);
        lock.lock();
      }
    });
  }

  const int workers = static_cast<int>(std::min<int64_t>(options.concurrency, options.orders));
  std::vector<std::thread> threads;
  threads.reserve(static_cast<size_t>(workers));
  for (int i = 0; i < workers; ++i) {
    threads.emplace_back([&] {
      Worker worker(options, base_url, run_id, slots);
      worker.Run(counters, results);
    });
  }
  for (auto& t : threads) t.join();
  const auto end = Clock::now();
  {
    std::lock_guard lock(mutex);
    finished = true;
  }
  finished_cv.notify_all();
  if (reporter.joinable()) reporter.join();

  result.sent = counters.sent.load();
  result.stopped_early = result.sent < options.orders;
  results.resize(static_cast<size_t>(result.sent));  // indices are taken in order, so these are the sent ones
  std::vector<double> latency, server, post;
  for (const auto& r : results) {
    switch (r.outcome) {
      case Outcome::kOk: ++result.ok; break;
      case Outcome::kNotOk: ++result.not_ok; break;
      case Outcome::kHttpError: ++result.http_errors; break;
      case Outcome::kTimeout: ++result.timeouts; break;
    }
    if (r.outcome == Outcome::kOk || r.outcome == Outcome::kNotOk) {
      latency.push_back(r.latency_ms);
      if (r.server_ms >= 0) server.push_back(r.server_ms);
    }
    if (r.post_ms >= 0) post.push_back(r.post_ms);
  }
  result.wall_s = MsBetween(start, end) / 1000.0;
  result.sagas_per_s = result.wall_s > 0 ? static_cast<double>(result.completed()) / result.wall_s : 0;
  result.latency = ComputeLatencyStats(std::move(latency));
  result.server_latency = ComputeLatencyStats(std::move(server));
  result.post_latency = ComputeLatencyStats(std::move(post));
  result.orders = std::move(results);
  return result;
}

std::string FormatProgress(const Progress& p, int64_t total) {
  std::ostringstream out;
  out << "bench: " << Fixed(p.elapsed_s, 1) << " s  sent " << p.sent << "/" << total << "  done " << p.done
      << "  in flight " << p.in_flight << "  " << Fixed(p.rate, 1) << " sagas/s (avg " << Fixed(p.avg_rate, 1)
      << ")";
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
  out << "  load      " << o.orders << " orders, concurrency " << o.concurrency << " (" << o.connections
      << " HTTP connections), timeout "
      << Fixed(static_cast<double>(o.timeout.count()) / 1000.0, 1) << " s per order\n";
  out << "            items " << o.first_item_id << ".." << (o.first_item_id + o.items - 1) << ", "
      << o.items_per_order << " per order, quantity 1.." << o.max_quantity << ", seed " << o.seed
      << (o.retry ? ", POST retried" : "") << "\n";
  if (!r.error.empty()) {
    out << "\n  not run: " << r.error << "\n";
    return out.str();
  }
  out << "\n";
  char line[160];
  auto row = [&](const char* name, int64_t n, const std::string& extra = "") {
    std::snprintf(line, sizeof(line), "  %-18s %8lld%s\n", name, static_cast<long long>(n), extra.c_str());
    out << line;
  };
  row("orders sent", r.sent, r.stopped_early ? "   (stopped early)" : "");
  row("completed OK", r.ok);
  row("completed NOT OK", r.not_ok);
  row("failed", r.failed(),
      "   (HTTP errors " + std::to_string(r.http_errors) + ", timeouts " + std::to_string(r.timeouts) + ")");
  std::snprintf(line, sizeof(line), "  %-18s %8.2f s\n", "wall time", r.wall_s);
  out << line;
  std::snprintf(line, sizeof(line), "  %-18s %8.1f sagas/s (completed / wall time)\n", "throughput",
                r.sagas_per_s);
  out << line;
  out << "\n";
  std::snprintf(line, sizeof(line), "  %-26s %7s %8s %8s %8s %8s %8s %8s\n", "latency (ms)", "count", "min",
                "p50", "p90", "p99", "max", "mean");
  out << line;
  auto stats = [&](const char* name, const LatencyStats& s) {
    std::snprintf(line, sizeof(line), "  %-26s %7lld %8.1f %8.1f %8.1f %8.1f %8.1f %8.1f\n", name,
                  static_cast<long long>(s.count), s.min, s.p50, s.p90, s.p99, s.max, s.mean);
    out << line;
  };
  stats("end-to-end (POST->final)", r.latency);
  stats("server (accepted->finished)", r.server_latency);
  stats("POST /neworder", r.post_latency);

  // A few examples of what went wrong, so a failing run explains itself.
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
  json orders = json::array();
  for (const auto& order : r.orders) {
    orders.push_back({{"index", order.index},
                      {"order_id", order.order_id},
                      {"outcome", ToString(order.outcome)},
                      {"final_status", order.final_status},
                      {"latency_ms", order.latency_ms},
                      {"server_ms", order.server_ms},
                      {"post_ms", order.post_ms},
                      {"polls", order.polls},
                      {"detail", order.detail}});
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
        {"orders", o.orders},
        {"concurrency", o.concurrency},
        {"connections", o.connections},
        {"timeout_s", static_cast<double>(o.timeout.count()) / 1000.0},
        {"first_item_id", o.first_item_id},
        {"items", o.items},
        {"items_per_order", o.items_per_order},
        {"max_quantity", o.max_quantity},
        {"seed", o.seed},
        {"retry", o.retry}}},
      {"error", r.error},
      {"sent", r.sent},
      {"completed_ok", r.ok},
      {"completed_not_ok", r.not_ok},
      {"failed", r.failed()},
      {"http_errors", r.http_errors},
      {"timeouts", r.timeouts},
      {"stopped_early", r.stopped_early},
      {"wall_s", r.wall_s},
      {"sagas_per_s", r.sagas_per_s},
      {"latency_ms", StatsJson(r.latency)},
      {"server_latency_ms", StatsJson(r.server_latency)},
      {"post_latency_ms", StatsJson(r.post_latency)},
      {"orders", orders},
  };
  return out.dump(2) + "\n";
}

int RunBenchCommand(LoadOptions options, const std::string& json_path) {
  // First SIGINT/SIGTERM: stop placing orders and report; a second one kills.
  g_stop_requested.store(false);
  struct sigaction action {};
  action.sa_handler = OnStopSignal;
  action.sa_flags = SA_RESETHAND;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
  options.stop = &g_stop_requested;

  const int64_t total = options.orders;
  const LoadResult result =
      RunLoad(options, [total](const Progress& p) { std::cerr << FormatProgress(p, total) << "\n"; });
  if (!result.error.empty()) {
    std::cerr << "sagaflow bench: " << result.error << "\n";
    return 2;
  }
  std::cout << FormatReport(result) << std::flush;
  if (!json_path.empty()) {
    std::ofstream file(json_path);
    file << ToJson(result);
    file.close();
    if (!file) {
      std::cerr << "sagaflow bench: cannot write " << json_path << "\n";
      return 2;
    }
    std::cout << "\n  results written to " << json_path << "\n";
  }
  return result.failed() == 0 ? 0 : 1;
}

}  // namespace sagaflow::bench
