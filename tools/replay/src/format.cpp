#include "format.hpp"

#include <fmt/chrono.h>
#include <fmt/format.h>

#include <chrono>

namespace sagaflow::replay::detail {

std::string FormatTime(core::TimeMs ms) {
  const int64_t seconds = ms >= 0 ? ms / 1000 : (ms - 999) / 1000;
  const std::chrono::sys_seconds t{std::chrono::seconds(seconds)};
  return fmt::format("{:%Y-%m-%dT%H:%M:%S}.{:03}Z", t, ms - seconds * 1000);
}

std::string FormatDuration(int64_t ms) {
  const bool negative = ms < 0;
  const int64_t a = negative ? -ms : ms;
  std::string text;
  if (a < 1'000) {
    text = fmt::format("{} ms", a);
  } else if (a < 60'000) {
    text = fmt::format("{:.1f} s", static_cast<double>(a) / 1000.0);
  } else if (a < 3'600'000) {
    text = fmt::format("{}m{:02}s", a / 60'000, (a / 1000) % 60);
  } else if (a < 86'400'000) {
    text = fmt::format("{}h{:02}m", a / 3'600'000, (a / 60'000) % 60);
  } else {
    text = fmt::format("{}d{:02}h", a / 86'400'000, (a / 3'600'000) % 24);
  }
  return negative ? "-" + text : text;
}

std::string StepName(core::Step step) {
  const std::string_view name = core::ToString(step);
  if (step != core::Step::kUnknown && name == core::ToString(core::Step::kUnknown)) {
    return "step_" + std::to_string(static_cast<int>(step));
  }
  return std::string(name);
}

}  // namespace sagaflow::replay::detail
