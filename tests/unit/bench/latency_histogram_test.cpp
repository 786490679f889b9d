#include "sagaflow/bench/latency_histogram.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

namespace sagaflow::bench {
namespace {

// The nearest-rank percentile of a sorted vector: what the histogram approximates.
int64_t ExactPercentile(const std::vector<int64_t>& sorted, double p) {
  const auto rank = std::max<size_t>(1, static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(sorted.size()))));
  return sorted[rank - 1];
}

TEST(LatencyHistogram, IsEmptyAtFirst) {
  LatencyHistogram h;
  EXPECT_EQ(h.count(), 0);
  EXPECT_EQ(h.min(), 0);
  EXPECT_EQ(h.max(), 0);
  EXPECT_EQ(h.mean(), 0);
  EXPECT_EQ(h.ValueAtPercentile(50), 0);
}

TEST(LatencyHistogram, CountsSmallValuesExactly) {
  LatencyHistogram h(11);
  for (int64_t v = 1; v <= 100; ++v) h.Record(v);
  EXPECT_EQ(h.count(), 100);
  EXPECT_EQ(h.min(), 1);
  EXPECT_EQ(h.max(), 100);
  EXPECT_DOUBLE_EQ(h.mean(), 50.5);
  EXPECT_EQ(h.ValueAtPercentile(50), 50);
  EXPECT_EQ(h.ValueAtPercentile(99), 99);
  EXPECT_EQ(h.ValueAtPercentile(100), 100);
}

TEST(LatencyHistogram, BucketsTileTheRangeWithoutGapsOrOverlaps) {
  LatencyHistogram h(5, int64_t{1} << 20);
  int64_t expected_low = 0;
  for (size_t b = 0; b < h.bucket_count(); ++b) {
    EXPECT_EQ(h.LowestInBucket(b), expected_low) << b;
    EXPECT_GE(h.HighestInBucket(b), h.LowestInBucket(b));
    EXPECT_EQ(h.BucketOf(h.LowestInBucket(b)), b);
    EXPECT_EQ(h.BucketOf(h.HighestInBucket(b)), b);
    expected_low = h.HighestInBucket(b) + 1;
  }
  EXPECT_GT(expected_low, int64_t{1} << 20);
}

TEST(LatencyHistogram, LargeValuesAreWithinTheRelativeErrorAndNeverUnderstated) {
  for (int bits : {7, 11}) {
    LatencyHistogram h(bits);
    const double bound = std::ldexp(1.0, 1 - bits);
    std::mt19937_64 rng(7);
    std::lognormal_distribution<double> dist(11.0, 2.0);  // median ~60 ms in microseconds, long tail
    std::vector<int64_t> values;
    for (int i = 0; i < 100'000; ++i) {
      const auto v = static_cast<int64_t>(dist(rng));
      values.push_back(v);
      h.Record(v);
    }
    std::sort(values.begin(), values.end());
    for (double p : {50.0, 90.0, 95.0, 99.0, 99.9, 100.0}) {
      const auto exact = ExactPercentile(values, p);
      const auto approx = h.ValueAtPercentile(p);
      EXPECT_GE(approx, exact) << "bits " << bits << " p" << p;
      EXPECT_LE(static_cast<double>(approx - exact), bound * static_cast<double>(exact) + 1) << "bits " << bits << " p" << p;
    }
    EXPECT_EQ(h.max(), values.back());
    EXPECT_EQ(h.min(), values.front());
  }
}

TEST(LatencyHistogram, MemoryDoesNotGrowWithTheCount) {
  LatencyHistogram h;
  const auto buckets = h.bucket_count();
  for (int i = 0; i < 1'000'000; ++i) h.Record(i % 5000);
  EXPECT_EQ(h.bucket_count(), buckets);
  EXPECT_EQ(h.count(), 1'000'000);
}

TEST(LatencyHistogram, MergeEqualsRecordingEverythingInOne) {
  LatencyHistogram a, b, all;
  for (int64_t v = 0; v < 10'000; v += 3) {
    ((v % 2) ? a : b).Record(v * 17);
    all.Record(v * 17);
  }
  a.Merge(b);
  EXPECT_EQ(a.count(), all.count());
  EXPECT_EQ(a.min(), all.min());
  EXPECT_EQ(a.max(), all.max());
  EXPECT_DOUBLE_EQ(a.mean(), all.mean());
  for (double p : {1.0, 50.0, 99.0, 99.9}) EXPECT_EQ(a.ValueAtPercentile(p), all.ValueAtPercentile(p));
  LatencyHistogram other_shape(7);
  EXPECT_THROW(a.Merge(other_shape), std::invalid_argument);
}

TEST(LatencyHistogram, ClampsValuesOutsideTheRange) {
  LatencyHistogram h(11, 1'000'000);
  h.Record(-5);
  h.Record(5'000'000);
  EXPECT_EQ(h.min(), 0);
  EXPECT_EQ(h.max(), 1'000'000);
  EXPECT_EQ(h.ValueAtPercentile(100), 1'000'000);
  h.Reset();
  EXPECT_EQ(h.count(), 0);
  EXPECT_EQ(h.ValueAtPercentile(50), 0);
}

}  // namespace
}  // namespace sagaflow::bench
