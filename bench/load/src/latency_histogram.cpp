#include "sagaflow/bench/latency_histogram.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <stdexcept>

namespace sagaflow::bench {

LatencyHistogram::LatencyHistogram(int significant_bits, int64_t max_value)
    : sub_bits_(significant_bits), max_value_(max_value) {
  if (significant_bits < 2 || significant_bits > 20) throw std::invalid_argument("significant_bits must be 2..20");
  if (max_value < 1) throw std::invalid_argument("max_value must be positive");
  counts_.assign(BucketOf(max_value) + 1, 0);
}

// Values below M = 2^S have a bucket each. A value with bit width S + k (k >= 1)
// lies in [M * 2^(k-1), M * 2^k), whose M/2 sub-buckets are 2^k wide.
size_t LatencyHistogram::BucketOf(int64_t value) const {
  const uint64_t v = static_cast<uint64_t>(std::clamp<int64_t>(value, 0, max_value_));
  const uint64_t m = uint64_t{1} << sub_bits_;
  if (v < m) return static_cast<size_t>(v);
  const int k = std::bit_width(v) - sub_bits_;
  return static_cast<size_t>(m + static_cast<uint64_t>(k - 1) * (m / 2) + ((v >> k) - m / 2));
}

int64_t LatencyHistogram::LowestInBucket(size_t bucket) const {
  const uint64_t m = uint64_t{1} << sub_bits_;
  if (bucket < m) return static_cast<int64_t>(bucket);
  const uint64_t rest = bucket - m;
  const uint64_t k = rest / (m / 2) + 1;
  const uint64_t sub = rest % (m / 2) + m / 2;
  return static_cast<int64_t>(sub << k);
}

int64_t LatencyHistogram::HighestInBucket(size_t bucket) const {
  const uint64_t m = uint64_t{1} << sub_bits_;
  if (bucket < m) return static_cast<int64_t>(bucket);
  const uint64_t k = (bucket - m) / (m / 2) + 1;
  return LowestInBucket(bucket) + static_cast<int64_t>((uint64_t{1} << k) - 1);
}

void LatencyHistogram::Record(int64_t value, int64_t count) {
  if (count <= 0) return;
  value = std::clamp<int64_t>(value, 0, max_value_);
  counts_[BucketOf(value)] += count;
  if (count_ == 0 || value < min_) min_ = value;
  max_ = std::max(max_, value);
  count_ += count;
  sum_ += value * count;
}

void LatencyHistogram::Merge(const LatencyHistogram& other) {
  if (other.sub_bits_ != sub_bits_ || other.max_value_ != max_value_) {
    throw std::invalid_argument("merging histograms of different shapes");
  }
  if (other.count_ == 0) return;
  for (size_t i = 0; i < counts_.size(); ++i) counts_[i] += other.counts_[i];
  if (count_ == 0 || other.min_ < min_) min_ = other.min_;
  max_ = std::max(max_, other.max_);
  count_ += other.count_;
  sum_ += other.sum_;
}

void LatencyHistogram::Reset() {
  std::fill(counts_.begin(), counts_.end(), 0);
  count_ = min_ = max_ = sum_ = 0;
}

int64_t LatencyHistogram::ValueAtPercentile(double percentile) const {
  if (count_ == 0) return 0;
  const double p = std::clamp(percentile, 0.0, 100.0);
  const auto rank = std::max<int64_t>(1, static_cast<int64_t>(std::ceil(p / 100.0 * static_cast<double>(count_))));
  int64_t seen = 0;
  for (size_t i = 0; i < counts_.size(); ++i) {
    seen += counts_[i];
    if (seen >= rank) return std::clamp(HighestInBucket(i), min_, max_);
  }
  return max_;
}

}  // namespace sagaflow::bench
