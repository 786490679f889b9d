#pragma once
/// The end-to-end load driver behind `sagaflow bench`: places orders on a
/// running sagaflow system over REST and measures how long each saga takes.
///
/// Two ways to load:
///   - closed loop (`concurrency` C, the default): C workers each place an
///     order, wait for its final status, and place the next one. Latency runs
///     from the start of the POST.
///   - open loop (`rate` R > 0): order i is due at start + i/R whatever the
///     system does; `connections` senders POST the orders as they fall due.
///     Latency runs from the due time, so a system (or driver) that falls
///     behind shows it as latency instead of hiding it (no coordinated
///     omission).
/// The run ends after `orders` orders or `duration`, whichever comes first
/// (at least one of them is set), or when `stop` is set; then the orders in
/// flight are followed to their end, each for at most `timeout`.
///
/// Final statuses are not polled: one server-sent-events stream
/// (GET /orders/events) announces each order that ends, matched to ours by
/// the Idempotency-Key the driver gives every order. Orders the stream did not
/// announce in time (it was interrupted, say) get one GET each at the end.
/// HTTP connections are kept alive.
///
/// Latencies go into log-bucketed histograms (LatencyHistogram), overall and
/// per second of the run; the per-second figures, the machine's CPU use (from
/// /proc/stat) and the throughput make the timeline that `--chart` draws.
///
/// Bounded: it stops by itself, and talks only to the loopback address.
///
/// Thread safety: RunLoad may be called from any thread, also concurrently.
/// The progress callback is called from a thread RunLoad owns, never
/// concurrently with itself.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sagaflow/bench/latency_histogram.hpp"

namespace sagaflow::bench {

struct LoadOptions {
  /// Base URL of the order service: http://127.0.0.1:PORT or http://localhost:PORT.
  std::string order_url = "http://127.0.0.1:8281";
  /// Orders to place in total; 0 = no limit (then `duration` must be set).
  int64_t orders = 1000;
  /// How long to place orders; 0 = no limit (then `orders` must be set).
  std::chrono::milliseconds duration{0};
  /// Closed loop: orders in flight at once (ignored when `rate` > 0).
  int concurrency = 20;
  /// Open loop: orders per second; 0 = closed loop.
  double rate = 0;
  /// Open loop: HTTP connections that send the due orders.
  int connections = 64;
  /// How long one order may take, due time to final status, before it counts as timed out.
  std::chrono::milliseconds timeout{60'000};
  /// Items are drawn from ids [first_item_id, first_item_id + items): fewer
  /// ids mean more orders reserve the same item (stock contention).
  int64_t first_item_id = 1;
  int64_t items = 1000;
  /// Distinct items per order (at most `items`), each with quantity 1..max_quantity.
  int items_per_order = 2;
  int max_quantity = 2;
  /// Seed of the order generator (same seed, same orders).
  uint64_t seed = 1;
  /// false: a POST that fails (connection error, 5xx) fails the order.
  /// true: it is retried with the same Idempotency-Key until the order's timeout.
  bool retry = false;
  /// RunBenchCommand first drives the same load this long and discards its
  /// figures: a broker started minutes ago is still compiling its hot paths
  /// and costs several times the CPU per saga it costs warm. 0 = no warm-up.
  std::chrono::milliseconds warmup{0};
  /// Spacing of progress callbacks.
  std::chrono::milliseconds progress_interval{2'000};
  /// When set to true (e.g. from a signal handler), no further orders are
  /// placed; orders in flight are still followed to the end.
  const std::atomic<bool>* stop = nullptr;
};

/// Checks the options; returns a message naming the offending `sagaflow bench` option, or nullopt.
std::optional<std::string> Validate(const LoadOptions& options);

/// How one order ended for the driver.
enum class Outcome : int8_t {
  kOk = 0,         // final status 3
  kNotOk = 1,      // final status 4 (a business outcome, e.g. out of stock)
  kHttpError = 2,  // POST rejected or failed, or an unexpected answer
  kTimeout = 3,    // no final status within the timeout
};
std::string_view ToString(Outcome outcome);  // "ok", "not_ok", "http_error", "timeout"

/// One order's fate. Latencies are milliseconds; -1 when not measured.
struct OrderResult {
  int64_t index = 0;     // 0-based position in the run
  int64_t order_id = 0;  // 0 if the POST never succeeded
  Outcome outcome = Outcome::kTimeout;
  int final_status = 0;  // 0 = none seen
  std::string detail;    // the order's detail, or what went wrong
  double post_ms = -1;     // POST /neworder round trip
  double latency_ms = -1;  // due time (open loop) or POST start (closed loop) -> final status seen
  double server_ms = -1;   // accepted_at -> finished_at as the order service recorded them
};

/// Percentiles of a set of millisecond values (0 when empty), from a LatencyHistogram.
struct LatencyStats {
  int64_t count = 0;
  double min = 0, mean = 0, p50 = 0, p95 = 0, p99 = 0, p999 = 0, max = 0;
};
/// `h` holds microseconds.
LatencyStats StatsOf(const LatencyHistogram& h);

/// Where the run happened (read from the local machine).
struct MachineInfo {
  std::string hostname;
  int nproc = 0;
  std::string cpu_model;  // "model name" of /proc/cpuinfo
  std::string kernel;     // uname -sr
  std::string date;       // start of the run, ISO-8601 UTC
};
MachineInfo CollectMachineInfo();

/// The whole machine's CPU time so far, from the first line of /proc/stat.
struct CpuTimes {
  double busy_s = 0;  // user + nice + system + irq + softirq + steal
  double idle_s = 0;  // idle + iowait
};
std::optional<CpuTimes> ReadCpuTimes();

/// A progress snapshot.
struct Progress {
  int64_t sent = 0;  // POSTs started
  int64_t done = 0;  // orders finished (any outcome)
  int64_t in_flight = 0;
  int64_t ok = 0, not_ok = 0, failed = 0;
  double elapsed_s = 0;
  double rate = 0;      // finished orders/s over the last interval
  double avg_rate = 0;  // finished orders/s since the start
  double p50_ms = 0, p99_ms = 0;  // end-to-end, over the last interval
  double cpu_percent = 0;         // machine CPU busy over the last interval (100 = every core)
};

/// One second of the run (by the time orders completed).
struct TimelinePoint {
  double t_s = 0;         // end of the second, from the start of the run
  int64_t sent = 0;       // POSTs started in it
  int64_t completed = 0;  // orders whose final status was seen in it
  double p50_ms = 0, p99_ms = 0, max_ms = 0;  // end-to-end latency of those
  double cpu_percent = -1;                    // machine CPU busy (100 = every core); -1 unknown
};

struct LoadResult {
  /// Non-empty when the run could not start (bad options, order service not
  /// reachable); then nothing was sent.
  std::string error;
  LoadOptions options;
  MachineInfo machine;
  int64_t sent = 0;
  int64_t ok = 0;
  int64_t not_ok = 0;
  int64_t http_errors = 0;
  int64_t timeouts = 0;
  int64_t failed() const { return http_errors + timeouts; }
  int64_t completed() const { return ok + not_ok; }
  /// Completed orders whose end the event stream missed (found by the final GET); no latency.
  int64_t completed_unobserved = 0;
  bool stopped_early = false;  // `stop` was set before the run's end
  /// First POST to last order finished.
  double wall_s = 0;
  /// completed() / wall_s.
  double sagas_per_s = 0;
  /// Orders per second actually sent (open loop: should match the rate).
  double sent_per_s = 0;
  /// The machine's CPU busy time over the run, and per completed saga (-1 if /proc/stat is unreadable).
  double cpu_busy_s = -1;
  double cpu_ms_per_saga = -1;
  /// Over completed orders (OK and NOT OK).
  LatencyStats latency;
  LatencyStats server_latency;
  LatencyStats post_latency;
  std::vector<TimelinePoint> timeline;
  /// Every order placed, in index order.
  std::vector<OrderResult> orders;
};

/// Runs the load (see the file comment). Never throws: invalid options or an
/// unreachable order service come back as LoadResult::error.
LoadResult RunLoad(const LoadOptions& options, const std::function<void(const Progress&)>& on_progress = {});

/// The human report: options, machine, outcomes, throughput, CPU, latency table.
std::string FormatReport(const LoadResult& result);
/// One progress line.
std::string FormatProgress(const Progress& progress, const LoadOptions& options);
/// The result as JSON: the report's fields, the timeline, and every order's
/// outcome (orders only when at most 100,000 were sent).
std::string ToJson(const LoadResult& result);
/// An SVG chart of the timeline: completed sagas/s (and sent/s), end-to-end
/// p50/p99 latency, and machine CPU, over time.
std::string ToSvgChart(const LoadResult& result);

/// `sagaflow bench`: runs the load with progress lines on stderr, prints the
/// report on stdout, writes ToJson to `json_path` and ToSvgChart to
/// `chart_path` if not empty. SIGINT/SIGTERM stop placing orders (the report
/// still comes). Returns the process exit status: 0 when every order
/// completed (OK or NOT OK), 1 when some failed or timed out, 2 when the run
/// could not start or a file could not be written.
int RunBenchCommand(LoadOptions options, const std::string& json_path, const std::string& chart_path = "");

}  // namespace sagaflow::bench
