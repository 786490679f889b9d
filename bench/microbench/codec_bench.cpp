// The wire codec: every Kafka record is encoded once by its producer and
// verified + decoded by every consumer, so these bound per-record CPU cost.

#include <benchmark/benchmark.h>

#include <cstdint>
#include <random>
#include <string>

#include "bench_data.hpp"
#include "sagaflow/core/codec.hpp"

namespace sagaflow::bench {
namespace {

constexpr core::OrderId kOrderId = 1'795'684'905'065'004;

void BM_EncodeStepCommand(benchmark::State& state) {
  const core::Message message = SampleStepCommandMessage(kOrderId);
  size_t bytes = 0;
  for (auto _ : state) {
    std::string encoded = core::Encode(message);
    bytes += encoded.size();
    benchmark::DoNotOptimize(encoded);
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(static_cast<int64_t>(bytes));
  state.counters["record_bytes"] = static_cast<double>(core::Encode(message).size());
}
BENCHMARK(BM_EncodeStepCommand);

// Decode = FlatBuffers verifier + conversion to the domain types.
void BM_DecodeStepCommand(benchmark::State& state) {
  const std::string encoded = core::Encode(SampleStepCommandMessage(kOrderId));
  for (auto _ : state) {
    auto decoded = core::Decode(encoded);
    benchmark::DoNotOptimize(decoded);
    if (!decoded.ok()) {
      state.SkipWithError(decoded.error().message.c_str());
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(encoded.size()));
}
BENCHMARK(BM_DecodeStepCommand);

// How fast a consumer turns away bad records (they go to the DLQ): a hostile
// or broken producer must not cost more than good traffic.
//   0 random:      random bytes of a real record's size (no file identifier)
//   1 truncated:   a real record cut in half (the verifier must catch it)
//   2 identifier:  random bytes behind a valid root offset and "SGF1"
//                  identifier, so the verifier itself has to reject them
void BM_DecodeRejectsGarbage(benchmark::State& state) {
  const std::string valid = core::Encode(SampleStepCommandMessage(kOrderId));
  std::mt19937 rng(42);
  std::string bad(valid.size(), '\0');
  for (char& c : bad) c = static_cast<char>(rng() & 0xff);
  switch (state.range(0)) {
    case 0:
      state.SetLabel("random");
      break;
    case 1:
      bad = valid.substr(0, valid.size() / 2);
      state.SetLabel("truncated");
      break;
    default:
      bad.replace(0, 8, valid, 0, 8);  // root offset + file identifier of a real record
      state.SetLabel("identifier");
      break;
  }
  if (core::Decode(bad).ok()) {
    state.SkipWithError("the garbage input decoded successfully; pick another seed");
    return;
  }
  for (auto _ : state) {
    auto decoded = core::Decode(bad);
    benchmark::DoNotOptimize(decoded);
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(bad.size()));
}
BENCHMARK(BM_DecodeRejectsGarbage)->Arg(0)->Arg(1)->Arg(2);

}  // namespace
}  // namespace sagaflow::bench
