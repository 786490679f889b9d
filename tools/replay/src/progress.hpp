#pragma once
// A progress bar on stderr, drawn only when enabled (the CLI enables it when
// stderr is a terminal); redrawn at most every 100 ms. Private to the library.

#include <chrono>
#include <cstdint>
#include <string>

namespace sagaflow::replay::detail {

class ProgressBar {
 public:
  ProgressBar(bool enabled, std::string what) : enabled_(enabled), what_(std::move(what)) {}
  ~ProgressBar() { Done(); }
  /// `total` <= 0: unknown, only the count is shown.
  void Update(int64_t done, int64_t total, const char* unit = "records");
  /// Clears the bar.
  void Done();

 private:
  bool enabled_;
  bool drawn_ = false;
  std::string what_;
  std::chrono::steady_clock::time_point last_{};
};

}  // namespace sagaflow::replay::detail
