#pragma once
/// Encodes domain messages (types.hpp) as FlatBuffers envelopes and decodes
/// untrusted bytes back. Decode runs the FlatBuffers verifier first and
/// rejects anything it cannot fully read (garbage, truncation, unknown union
/// members, missing required parts) with an Errc::kCorrupt error whose message
/// says what was wrong. Thread-safe: no shared state.

#include <string>
#include <string_view>

#include "sagaflow/core/result.hpp"
#include "sagaflow/core/types.hpp"

namespace sagaflow::core {

/// Serializes `message` to the bytes of one Kafka record value.
std::string Encode(const Message& message);

/// Verifies and decodes one record value. Never throws on bad input.
Result<Message> Decode(std::string_view bytes);

/// The name of the payload alternative, for logs ("StepCommand", ...).
std::string_view PayloadName(const Payload& payload);

}  // namespace sagaflow::core
