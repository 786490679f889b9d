#pragma once
/// Whether a broker enforces the services' access rules (core::AccessTable and
/// the ACLs derived from it): a client without credentials gets nothing, and a
/// service's principal reaches what its ACLs allow and nothing else. Run by
/// `sagaflow acls check` (which deployment/docker/compose runs against the
/// Compose stack) and by the secured broker's test (tests/secured).

#include <chrono>
#include <string>
#include <vector>

#include "sagaflow/core/kafka/kafka_client.hpp"
#include "sagaflow/core/topics.hpp"

namespace sagaflow::kafka {

/// One expectation and what the broker did.
struct AccessCheck {
  std::string expectation;  // "a client without credentials is refused"
  bool passed = false;
  std::string observed;     // the broker's answer, for the report
};

/// Checks, on the broker of `as_service` (whose overrides hold the
/// credentials of `service`'s principal), that
///   - the principal may read one of its inputs;
///   - a client without credentials (no overrides) gets no metadata within
///     5 s (or `timeout` if shorter);
///   - reading a topic another service writes and it does not read fails
///     with an authorization error (other errors, such as a new topic's
///     leader not elected yet, are retried until `timeout`);
///   - it may not commit a transaction that writes a topic it does not own
///     (with a transactional id of its own);
///   - using another service's transactional id fails with an authorization
///     error.
/// Topic, group and transactional id names carry `topics.prefix`. Each
/// broker call is bounded by `timeout`. Throws std::invalid_argument for an
/// unknown service.
std::vector<AccessCheck> CheckAccess(const KafkaConfig& as_service, const std::string& service,
                                     const core::TopicNames& topics, std::chrono::milliseconds timeout);

}  // namespace sagaflow::kafka
