#include "progress.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>

namespace sagaflow::replay::detail {

void ProgressBar::Update(int64_t done, int64_t total, const char* unit) {
  if (!enabled_) return;
  const auto now = std::chrono::steady_clock::now();
  if (drawn_ && now - last_ < std::chrono::milliseconds(100)) return;
  last_ = now;
  drawn_ = true;
  std::string line;
  if (total > 0) {
    const double fraction = std::clamp(static_cast<double>(done) / static_cast<double>(total), 0.0, 1.0);
    constexpr int kWidth = 30;
    const int filled = static_cast<int>(fraction * kWidth);
    line = fmt::format("\r{} [{}{}] {:3.0f}% {:L}/{:L} {}", what_, std::string(filled, '#'),
                       std::string(kWidth - filled, '.'), fraction * 100.0, done, total, unit);
  } else {
    line = fmt::format("\r{} {} {}", what_, done, unit);
  }
  std::fputs(line.c_str(), stderr);
  std::fflush(stderr);
}

void ProgressBar::Done() {
  if (!enabled_ || !drawn_) return;
  std::fputs("\r\033[K", stderr);
  std::fflush(stderr);
  drawn_ = false;
}

}  // namespace sagaflow::replay::detail
