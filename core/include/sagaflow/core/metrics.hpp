#pragma once
/// Process metrics in the Prometheus text exposition format (GET /metrics).
/// Counters and gauges are identified by name plus an optional label set
/// written in Prometheus syntax (`records_total{topic="x"}`); histograms use
/// fixed latency buckets in seconds. Thread-safe.

#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace sagaflow::core {

/// See the file comment.
class Metrics {
 public:
  /// Every metric is exported as sagaflow_<name> with a service="<service>" label.
  explicit Metrics(std::string service);

  /// Declares a metric's help text (optional; shown as # HELP). A counter
  /// named *_total is exported at 0 from then on.
  void Describe(std::string_view name, std::string_view help);
  /// Adds `value` to the counter `name` with `labels` (e.g. `topic="x"`, may be empty).
  void Add(std::string_view name, double value = 1, std::string_view labels = {});
  void Set(std::string_view name, double value, std::string_view labels = {});
  /// Records one observation (in seconds) in the histogram `name`.
  void Observe(std::string_view name, double seconds);
  /// The current value of a counter or gauge (0 if never touched).
  double Value(std::string_view name, std::string_view labels = {}) const;

  std::string RenderPrometheus() const;

 private:
  struct Histogram {
    std::vector<uint64_t> buckets;
    uint64_t count = 0;
    double sum = 0;
  };
  std::string service_;
  mutable std::mutex mu_;
  std::map<std::string, std::string, std::less<>> help_;
  std::map<std::string, std::map<std::string, double>, std::less<>> counters_;
  std::map<std::string, std::map<std::string, double>, std::less<>> gauges_;
  std::map<std::string, Histogram, std::less<>> histograms_;
};

}  // namespace sagaflow::core
