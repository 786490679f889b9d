#include "sagaflow/core/kafka/access_check.hpp"

#include <algorithm>
#include <thread>

namespace sagaflow::kafka {

namespace {

/// How long a client without credentials is given to get an answer.
constexpr std::chrono::milliseconds kAnonymousWait{5000};

bool Contains(const std::vector<std::string>& names, const std::string& name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

/// The first topic another service writes that `pick` accepts ("" if none).
template <typename Pick>
std::string ForeignTopic(const std::vector<core::ServiceAccess>& table, const std::string& service,
                         Pick pick) {
  for (const auto& other : table) {
    if (other.service == service) continue;
    for (const auto& topic : other.writes) {
      if (pick(topic)) return topic;
    }
  }
  return "";
}

bool IsAuthorizationError(const core::Error& error) {
  return error.message.find("uthorization failed") != std::string::npos;
}

/// EndOffsets of `topic`, asked again after an error that is not an
/// authorization failure (say a new topic's leader not elected yet) until
/// `timeout` passes.
core::Result<OffsetMap> EndOffsetsSettled(const KafkaConfig& config, const std::string& topic,
                                          std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    auto end = EndOffsets(config, topic);
    if (end.ok() || IsAuthorizationError(end.error())) return end;
    if (std::chrono::steady_clock::now() >= deadline) return end;
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
}

}  // namespace

std::vector<AccessCheck> CheckAccess(const KafkaConfig& as_service, const std::string& service,
                                     const core::TopicNames& topics, std::chrono::milliseconds timeout) {
  const auto table = core::AccessTable(topics);
  const auto own = core::AccessOf(topics, service);
  std::vector<AccessCheck> out;

  const std::string input = own.reads.front();
  {
    auto end = EndOffsetsSettled(as_service, input, timeout);
    out.push_back({"User:" + service + " may read its input " + input, end.ok(),
                   end.ok() ? "read its end offsets" : end.error().message});
  }

  // No credentials: the broker must not even answer a metadata request. (It answered the
  // principal just before, so a refusal is not a broker that is down.)
  {
    KafkaConfig anonymous = as_service;
    anonymous.overrides.clear();
    auto answered = WaitForBroker(anonymous, std::min<std::chrono::milliseconds>(timeout, kAnonymousWait));
    out.push_back({"a client without credentials is refused", !answered.ok(),
                   answered.ok() ? "the broker answered its metadata request" : answered.error().message});
  }

  const std::string not_read =
      ForeignTopic(table, service, [&](const std::string& t) { return !Contains(own.reads, t); });
  {
    auto end = EndOffsetsSettled(as_service, not_read, timeout);
    out.push_back({"User:" + service + " may not read " + not_read,
                   !end.ok() && IsAuthorizationError(end.error()),
                   end.ok() ? "read its end offsets" : end.error().message});
  }

  const std::string not_written =
      ForeignTopic(table, service, [&](const std::string& t) { return !Contains(own.writes, t); });
  {
    AccessCheck check{"User:" + service + " may not write " + not_written, false, ""};
    const std::string id = core::ServiceIdPrefixOf(topics.prefix, service) + "access-check";
    auto producer = TransactionalProducer::Open(as_service, id, timeout);
    if (!producer.ok()) {
      check.observed =
          "could not open a producer with its own transactional id " + id + ": " + producer.error().message;
    } else if (auto begun = (*producer)->Begin(); !begun.ok()) {
      check.observed = "could not begin a transaction: " + begun.error().message;
    } else if (auto produced = (*producer)->Produce(not_written, "access-check", "forged"); !produced.ok()) {
      check.passed = true;
      check.observed = produced.error().message;
    } else if (auto committed = (*producer)->Commit(); committed.ok()) {
      check.observed = "the transaction that wrote it committed";
    } else {
      check.passed = true;
      check.observed = committed.error().message;
    }
    out.push_back(std::move(check));
  }

  {
    const auto& other = table.front().service == service ? table.back().service : table.front().service;
    const std::string id = core::ServiceIdPrefixOf(topics.prefix, other) + "0";
    auto producer = TransactionalProducer::Open(as_service, id, timeout);
    out.push_back({"User:" + service + " may not use " + other + "'s transactional id " + id,
                   !producer.ok() && IsAuthorizationError(producer.error()),
                   producer.ok() ? "initialized transactions with it" : producer.error().message});
  }
  return out;
}

}  // namespace sagaflow::kafka
