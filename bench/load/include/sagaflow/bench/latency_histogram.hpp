#pragma once
/// A log-bucketed histogram of non-negative integer values (the load driver
/// records microseconds), in the manner of HdrHistogram: values below 2^S are
/// counted exactly; above, each power-of-two range is split into 2^(S-1)
/// equal sub-buckets, so a value is known to within a relative error of
/// 2^(1-S) (S = `significant_bits`; 11 gives 0.1 %, 7 gives 1.6 %). Memory is
/// fixed by S and the largest trackable value, never by the count: recording
/// a million values costs what recording ten does.
///
/// Percentiles return the highest value equivalent to the bucket holding the
/// rank (never more than the exact maximum recorded), like HdrHistogram's
/// "highest equivalent value": a percentile is never understated. min, max,
/// count and mean are exact.
///
/// Thread safety: none; one writer, or merge per-thread histograms.

#include <cstddef>
#include <cstdint>
#include <vector>

namespace sagaflow::bench {

class LatencyHistogram {
 public:
  /// `significant_bits` in [2, 20]; values above `max_value` are recorded as max_value.
  explicit LatencyHistogram(int significant_bits = 11, int64_t max_value = int64_t{1} << 36);

  /// Records `value` (negative values count as 0) `count` times.
  void Record(int64_t value, int64_t count = 1);
  /// Adds every value of `other` (which must have the same shape).
  void Merge(const LatencyHistogram& other);
  void Reset();

  int64_t count() const { return count_; }
  /// 0 when empty.
  int64_t min() const { return count_ ? min_ : 0; }
  int64_t max() const { return max_; }
  double mean() const { return count_ ? static_cast<double>(sum_) / static_cast<double>(count_) : 0; }
  /// The value at `percentile` (0..100] by nearest rank, as described above; 0 when empty.
  int64_t ValueAtPercentile(double percentile) const;

  /// The bucket a value falls in, and the range of values a bucket holds (for tests).
  size_t BucketOf(int64_t value) const;
  int64_t LowestInBucket(size_t bucket) const;
  int64_t HighestInBucket(size_t bucket) const;
  size_t bucket_count() const { return counts_.size(); }

 private:
  int sub_bits_;
  int64_t max_value_;
  std::vector<int64_t> counts_;
  int64_t count_ = 0;
  int64_t min_ = 0;
  int64_t max_ = 0;
  int64_t sum_ = 0;  // microseconds: 2^63 is ample
};

}  // namespace sagaflow::bench
