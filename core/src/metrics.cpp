#include "sagaflow/core/metrics.hpp"

#include <fmt/format.h>

#include <array>

namespace sagaflow::core {
namespace {
constexpr std::array<double, 12> kBuckets = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                             0.1,   0.25,   0.5,   1.0,  2.5,   5.0};

std::string Labels(const std::string& service, const std::string& extra) {
  return extra.empty() ? fmt::format("service=\"{}\"", service) : fmt::format("service=\"{}\",{}", service, extra);
}
}  // namespace

Metrics::Metrics(std::string service) : service_(std::move(service)) {}

void Metrics::Describe(std::string_view name, std::string_view help) {
  std::lock_guard lock(mu_);
  help_[std::string(name)] = std::string(help);
  // Counters (named *_total, as Prometheus recommends) are shown from the start, at 0.
  if (name.ends_with("_total")) counters_[std::string(name)].try_emplace("", 0);
}

void Metrics::Add(std::string_view name, double value, std::string_view labels) {
  std::lock_guard lock(mu_);
  counters_[std::string(name)][std::string(labels)] += value;
}

void Metrics::Set(std::string_view name, double value, std::string_view labels) {
  std::lock_guard lock(mu_);
  gauges_[std::string(name)][std::string(labels)] = value;
}

void Metrics::Observe(std::string_view name, double seconds) {
  std::lock_guard lock(mu_);
  auto& h = histograms_[std::string(name)];
  if (h.buckets.empty()) h.buckets.assign(kBuckets.size(), 0);
  for (size_t i = 0; i < kBuckets.size(); ++i) {
    if (seconds <= kBuckets[i]) ++h.buckets[i];
  }
  ++h.count;
  h.sum += seconds;
}

double Metrics::Value(std::string_view name, std::string_view labels) const {
  std::lock_guard lock(mu_);
  for (const auto* family : {&counters_, &gauges_}) {
    auto it = family->find(name);
    if (it == family->end()) continue;
    auto jt = it->second.find(std::string(labels));
    if (jt != it->second.end()) return jt->second;
  }
  return 0;
}

std::string Metrics::RenderPrometheus() const {
  std::lock_guard lock(mu_);
  std::string out;
  auto header = [&](const std::string& name, const char* type) {
    auto it = help_.find(name);
    if (it != help_.end()) out += fmt::format("# HELP sagaflow_{} {}\n", name, it->second);
    out += fmt::format("# TYPE sagaflow_{} {}\n", name, type);
  };
  for (const auto& [name, series] : counters_) {
    header(name, "counter");
    for (const auto& [labels, value] : series) {
      out += fmt::format("sagaflow_{}{{{}}} {}\n", name, Labels(service_, labels), value);
    }
  }
  for (const auto& [name, series] : gauges_) {
    header(name, "gauge");
    for (const auto& [labels, value] : series) {
      out += fmt::format("sagaflow_{}{{{}}} {}\n", name, Labels(service_, labels), value);
    }
  }
  for (const auto& [name, h] : histograms_) {
    header(name, "histogram");
    for (size_t i = 0; i < kBuckets.size(); ++i) {
      out += fmt::format("sagaflow_{}_bucket{{{},le=\"{}\"}} {}\n", name, Labels(service_, ""), kBuckets[i],
                         h.buckets[i]);
    }
    out += fmt::format("sagaflow_{}_bucket{{{},le=\"+Inf\"}} {}\n", name, Labels(service_, ""), h.count);
    out += fmt::format("sagaflow_{}_sum{{{}}} {}\n", name, Labels(service_, ""), h.sum);
    out += fmt::format("sagaflow_{}_count{{{}}} {}\n", name, Labels(service_, ""), h.count);
  }
  return out;
}

}  // namespace sagaflow::core
