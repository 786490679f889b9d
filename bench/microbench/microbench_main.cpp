// sagaflow_microbench: Google Benchmark's main plus a line of build context,
// so a saved JSON result says what it measured.

#include <benchmark/benchmark.h>

int main(int argc, char** argv) {
#ifdef NDEBUG
  benchmark::AddCustomContext("sagaflow_asserts", "off (NDEBUG)");
#else
  benchmark::AddCustomContext("sagaflow_asserts", "on");
#endif
#ifdef SAGAFLOW_BUILD_TYPE
  benchmark::AddCustomContext("sagaflow_build_type", SAGAFLOW_BUILD_TYPE);
#endif
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
