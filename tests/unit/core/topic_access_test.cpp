// The access table (core::AccessTable) is the source of the services' Kafka
// ACLs: it must cover what each service really consumes and restores, and the
// ACLs derived from it must grant nothing beyond it.

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <fstream>

#include "sagaflow/core/kafka/kafka_client.hpp"
#include "sagaflow/core/topics.hpp"
#include "sagaflow/notification/notification_service.hpp"
#include "sagaflow/orchestrator/orchestrator_service.hpp"
#include "sagaflow/order/order_service.hpp"
#include "sagaflow/payment/payment_service.hpp"
#include "sagaflow/warehouse/warehouse_service.hpp"
#include "support/temp_dir.hpp"

namespace sagaflow {
namespace {

bool Contains(const std::vector<std::string>& names, const std::string& name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

std::unique_ptr<runtime::Service> Make(const std::string& role, runtime::ServiceOptions o) {
  if (role == "order") return order::MakeOrder(o);
  if (role == "orchestrator") return orchestrator::MakeOrchestrator(o, {});
  if (role == "warehouse") return warehouse::MakeWarehouse(o, {});
  if (role == "payment") return payment::MakePayment(o, {});
  return notification::MakeNotification(o, {});
}

TEST(TopicAccess, CoversWhatEveryServiceConsumesAndRestores) {
  const core::TopicNames topics("p.");
  for (const auto& access : core::AccessTable(topics)) {
    runtime::ServiceOptions o;
    o.topic_prefix = "p.";
    auto service = Make(access.service, o);
    ASSERT_EQ(service->name(), access.service);
    for (const auto& input : service->InputTopics()) EXPECT_TRUE(Contains(access.reads, input)) << input;
    for (const auto& changelog : service->Changelogs()) {
      EXPECT_TRUE(Contains(access.reads, changelog.topic)) << changelog.topic;
      EXPECT_TRUE(Contains(access.writes, changelog.topic)) << changelog.topic;
    }
    EXPECT_TRUE(Contains(access.writes, topics.dlq)) << access.service;
  }
}

TEST(TopicAccess, PaymentMayNotTouchTheWarehouseCommandsOrTheNewOrders) {
  const core::TopicNames topics;
  const auto acls = core::AclBindingsOf(core::AccessOf(topics, "payment"), "");
  std::vector<std::string> lines;
  for (const auto& acl : acls) lines.push_back(core::ToString(acl));
  EXPECT_TRUE(Contains(lines, "User:payment TOPIC LITERAL orders.service.payment.pay READ"));
  EXPECT_TRUE(Contains(lines, "User:payment TOPIC LITERAL orders.service.payment.status WRITE"));
  EXPECT_TRUE(Contains(lines, "User:payment TRANSACTIONAL_ID PREFIXED sagaflow-payment- WRITE"));
  EXPECT_TRUE(Contains(lines, "User:payment GROUP LITERAL sagaflow-payment READ"));
  for (const auto& acl : acls) {
    EXPECT_EQ(acl.principal, "User:payment");
    EXPECT_NE(acl.name, topics.warehouse_reserve);
    EXPECT_NE(acl.name, topics.order);
  }
  EXPECT_THROW(core::AccessOf(topics, "stranger"), std::invalid_argument);
}

TEST(KafkaProperties, ReadsKeyValueLinesSkippingCommentsAndBlanks) {
  testing::TempDir dir;
  const auto path = (dir.path() / "client.properties").string();
  std::ofstream(path) << "# credentials\n\nsecurity.protocol=SASL_PLAINTEXT\n sasl.username = payment \n"
                         "sasl.password=a=b\n";
  ::chmod(path.c_str(), 0600);
  auto props = kafka::LoadKafkaProperties(path);
  ASSERT_TRUE(props.ok()) << props.error().message;
  EXPECT_EQ(props->size(), 3u);
  EXPECT_EQ(props->at("sasl.username"), "payment");
  EXPECT_EQ(props->at("sasl.password"), "a=b");
}

TEST(KafkaProperties, RefusesAMissingAccessibleOrMalformedFile) {
  testing::TempDir dir;
  const auto path = (dir.path() / "client.properties").string();
  auto missing = kafka::LoadKafkaProperties(path);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message.find("does not exist"), std::string::npos);

  std::ofstream(path) << "sasl.password=secret\n";
  ::chmod(path.c_str(), 0644);
  auto open = kafka::LoadKafkaProperties(path);
  ASSERT_FALSE(open.ok());
  EXPECT_NE(open.error().message.find("chmod 600"), std::string::npos) << open.error().message;

  std::ofstream(path) << "sasl.password=secret\njust words\n";
  ::chmod(path.c_str(), 0600);
  auto malformed = kafka::LoadKafkaProperties(path);
  ASSERT_FALSE(malformed.ok());
  EXPECT_NE(malformed.error().message.find(":2: expected key=value"), std::string::npos) << malformed.error().message;

  EXPECT_FALSE(kafka::ParseKafkaProperty("=value").ok());
  EXPECT_FALSE(kafka::ParseKafkaProperty("novalue").ok());
}

}  // namespace
}  // namespace sagaflow
