// The libFuzzer entry point of one fuzz binary; SAGAFLOW_FUZZ_ENTRY names the
// function of fuzz_entries.hpp it drives (set by tests/fuzz/CMakeLists.txt).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "fuzz_entries.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto problem = sagaflow::fuzz::SAGAFLOW_FUZZ_ENTRY(std::string_view(reinterpret_cast<const char*>(data), size));
  if (!problem.empty()) {
    std::fprintf(stderr, "\nfuzz property broken: %s\n", problem.c_str());
    std::abort();  // libFuzzer writes the input to crash-<sha1> and names it
  }
  return 0;
}
