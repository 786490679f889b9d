#pragma once
// Text helpers shared by the replay views (private to the library).

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "sagaflow/core/types.hpp"

namespace sagaflow::replay::detail {

/// "2026-11-27T06:40:01.123Z".
std::string FormatTime(core::TimeMs ms);
/// "850 ms", "12.3 s", "4m05s", "2h03m", "3d04h".
std::string FormatDuration(int64_t ms);
/// A step's name, or "step_N" for values the core has no name for.
std::string StepName(core::Step step);

}  // namespace sagaflow::replay::detail
