#pragma once
/// Helpers for tests against the real broker: its address and unique names so
/// that tests sharing one broker never see each other's records.

#include <chrono>
#include <functional>
#include <string>

#include "sagaflow/core/kafka/kafka_client.hpp"

namespace sagaflow::testing {

/// The broker the integration tests use: $SAGAFLOW_TEST_BROKERS or 127.0.0.1:9092.
kafka::KafkaConfig TestKafka();

/// A prefix unique to this process and call, e.g. "t1732612345-4711-3.".
std::string UniquePrefix(const std::string& name);

/// Polls `condition` every 20 ms until it holds or `timeout` passes; returns
/// whether it held. Tests wait on conditions with a bounded deadline, never on sleeps.
bool WaitFor(const std::function<bool()>& condition, std::chrono::milliseconds timeout);

}  // namespace sagaflow::testing
