#pragma once
/// The JSON forms of orders and saga steps at the REST edge (the reference
/// system's field names and numeric codes). JSON exists only here: inside the
/// system everything is FlatBuffers.

#include <string>

#include <nlohmann/json.hpp>

#include "sagaflow/core/types.hpp"

namespace sagaflow::runtime {

/// Parses and validates an order as POST /neworder receives it. Throws
/// HttpError(400) naming the first offending field: wrong type, missing or
/// empty items, quantity < 1, negative price/sum/ids, unknown payment or
/// notification type. `status` and `detail` are accepted and ignored.
core::Order OrderFromJson(const nlohmann::json& body);

nlohmann::json OrderToJson(const core::Order& order);
nlohmann::json StepRecordToJson(const core::StepRecord& step);
/// The order with its status (number and text), detail and step history.
nlohmann::json OrderRecordToJson(const core::OrderRecord& record);
/// ISO-8601 UTC time with milliseconds, e.g. "2026-11-26T09:00:00.123Z".
std::string FormatTime(core::TimeMs ms);

}  // namespace sagaflow::runtime
