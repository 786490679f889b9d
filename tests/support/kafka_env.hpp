#pragma once
/// Helpers for tests against the real broker: its address and unique names so
/// that tests sharing one broker never see each other's records.

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "sagaflow/core/kafka/kafka_client.hpp"

namespace sagaflow::testing {

/// The broker the integration tests use: $SAGAFLOW_TEST_BROKERS or 127.0.0.1:9092.
kafka::KafkaConfig TestKafka();

/// A prefix unique to this process and call, e.g. "t1732612345-4711-3.".
std::string UniquePrefix(const std::string& name);

/// Polls `condition` every 20 ms until it holds or `timeout` passes; returns
/// whether it held. Tests wait on conditions with a bounded deadline, never on sleeps.
bool WaitFor(const std::function<bool()>& condition, std::chrono::milliseconds timeout);

/// Waits until read_committed readers can see the records a transaction
/// committed (`delivered`, what Commit returned): the broker writes a
/// transaction's commit markers after commit_transaction has returned, and
/// until then a read to the end stops short of them. Returns whether they
/// became visible within `timeout`.
bool WaitVisible(const kafka::KafkaConfig& config, const std::vector<kafka::Delivered>& delivered,
                 std::chrono::milliseconds timeout = std::chrono::seconds(30));

}  // namespace sagaflow::testing
