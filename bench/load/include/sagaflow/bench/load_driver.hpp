#pragma once
/// The end-to-end load driver behind `sagaflow bench`: places orders on a
/// running sagaflow system over REST and measures how long each saga takes.
///
/// Closed loop: `concurrency` workers each POST /neworder, then poll
/// GET /orders/{id} until the status is final (3 OK, 4 NOT OK) or the
/// per-order timeout passes, then place the next order, until `orders` have
/// been placed. End-to-end latency runs from the start of the POST to the
/// poll that first sees the final status. Polls are spaced elapsed/20 apart
/// (between poll_min and poll_max), so the observed latency overshoots the
/// true one by at most ~5% plus one GET round trip; the order service's own
/// accepted_at -> finished_at span (millisecond clock, no polling) is reported
/// alongside as `server` latency.
///
/// Bounded: it stops by itself after `orders` orders (or after `stop` is set),
/// each followed for at most `timeout`. It talks only to `order_url`.
///
/// Thread safety: RunLoad may be called from any thread, also concurrently
/// (each call has its own workers and connections). The progress callback is
/// called from a reporter thread RunLoad owns, never concurrently with itself.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sagaflow::bench {

struct LoadOptions {
  /// Base URL of the order service: http://host:port (no path, no https).
  std::string order_url = "http://127.0.0.1:8281";
  /// Orders to place in total.
  int64_t orders = 1000;
  /// Orders in flight at once (worker threads).
  int concurrency = 20;
  /// HTTP requests in flight at once, over all workers (one connection per
  /// request). The order service's HTTP server has 8 threads and a listen
  /// backlog of 5; more simultaneous connections than that measure its
  /// accept queue (1 s SYN retries) instead of the sagas.
  int connections = 6;
  /// How long one order may take, POST to final status, before it counts as timed out.
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
  /// Bounds of the poll spacing (see the file comment).
  std::chrono::milliseconds poll_min{5};
  std::chrono::milliseconds poll_max{200};
  /// false: a POST that fails (connection error, 5xx) fails the order.
  /// true: it is retried with the same Idempotency-Key until the order's timeout
  /// (for runs across restarts; never places an order twice).
  bool retry = false;
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
  int final_status = 0;  // last status seen (0 = none)
  std::string detail;    // the order's detail, or what went wrong
  double post_ms = -1;   // POST /neworder round trip
  double latency_ms = -1;  // POST start -> final status observed
  double server_ms = -1;   // accepted_at -> finished_at as the order service recorded them
  int polls = 0;
};

/// Nearest-rank percentiles over a set of millisecond values (0 when empty).
struct LatencyStats {
  int64_t count = 0;
  double min = 0, mean = 0, p50 = 0, p90 = 0, p99 = 0, max = 0;
};
LatencyStats ComputeLatencyStats(std::vector<double> values_ms);

/// Where the run happened (read from the local machine).
struct MachineInfo {
  std::string hostname;
  int nproc = 0;
  std::string cpu_model;  // "model name" of /proc/cpuinfo
  std::string kernel;     // uname -sr
  std::string date;       // start of the run, ISO-8601 UTC
};
MachineInfo CollectMachineInfo();

/// A progress snapshot.
struct Progress {
  int64_t sent = 0;  // POSTs started
  int64_t done = 0;  // orders finished (any outcome)
  int64_t in_flight = 0;
  int64_t ok = 0, not_ok = 0, failed = 0;
  double elapsed_s = 0;
  double rate = 0;      // finished orders/s over the last interval
  double avg_rate = 0;  // finished orders/s since the start
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
  bool stopped_early = false;  // `stop` was set before every order was placed
  /// First POST to last order finished.
  double wall_s = 0;
  /// completed() / wall_s.
  double sagas_per_s = 0;
  /// Over completed orders (OK and NOT OK).
  LatencyStats latency;
  LatencyStats server_latency;
  LatencyStats post_latency;
  /// Every order placed, in index order.
  std::vector<OrderResult> orders;
};

/// Runs the load (see the file comment). Never throws: invalid options or an
/// unreachable order service come back as LoadResult::error.
LoadResult RunLoad(const LoadOptions& options, const std::function<void(const Progress&)>& on_progress = {});

/// The human report: options, machine, outcomes, throughput, latency table.
std::string FormatReport(const LoadResult& result);
/// One progress line ("bench: 4.0 s  sent 180/1000  done 160  in flight 20  42.0/s (avg 40.0/s)").
std::string FormatProgress(const Progress& progress, int64_t total);
/// The result as JSON: the report's fields plus every order's outcome.
std::string ToJson(const LoadResult& result);

/// `sagaflow bench`: runs the load with progress lines on stderr every
/// progress_interval, prints the report on stdout, writes ToJson to
/// `json_path` if not empty. SIGINT/SIGTERM stop placing orders (the report
/// still comes). Returns the process exit status: 0 when every order
/// completed (OK or NOT OK), 1 when some failed or timed out, 2 when the run
/// could not start or the JSON file could not be written.
int RunBenchCommand(LoadOptions options, const std::string& json_path);

}  // namespace sagaflow::bench
