#pragma once
/// Inputs shared by the microbenchmarks: a realistic order and the messages
/// built from it. Deterministic (no clock, fixed seeds) so runs compare.

#include <string>

#include "sagaflow/core/types.hpp"

namespace sagaflow::bench {

/// A fixed instant, so saga deadlines and event times do not depend on the clock.
inline constexpr core::TimeMs kBenchStartMs = 1'700'000'000'000;

/// An order shaped like the reference request: two items, card, email.
core::Order SampleOrder(core::OrderId id);

/// The envelope the orchestrator sends a participant: a StepCommand(reserve_stock).
core::Message SampleStepCommandMessage(core::OrderId id);

}  // namespace sagaflow::bench
