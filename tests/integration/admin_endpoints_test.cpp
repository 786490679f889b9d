// Fault injection (POST /set) and restock (POST /stock) are admin requests:
// they need the token of --admin-token-file, and are off without one.

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "sagaflow/payment/payment_service.hpp"
#include "support/kafka_env.hpp"
#include "support/test_system.hpp"

namespace sagaflow::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

class AdminEndpoints : public SystemTest {
 protected:
  runtime::ServiceOptions PaymentOptions(const TempDir& dir) {
    runtime::ServiceOptions o;
    o.brokers = system_->kafka().brokers;
    o.topic_prefix = system_->prefix();
    o.partitions = system_->options().partitions;
    o.data_dir = (dir.path() / "payment").string();
    o.instance_id = "1";
    return o;
  }
};

TEST_F(AdminEndpoints, RefuseAMissingOrWrongTokenAndChangeNothing) {
  ASSERT_NO_FATAL_FAILURE(Boot());
  auto& sys = *system_;
  const std::string body = R"({"mistakes": 100})";
  for (const std::string& token : std::vector<std::string>{"", "Bearer wrong-token", "Bearer " + sys.admin_token() + "x"}) {
    SCOPED_TRACE(token);
    auto reply = sys.Request("payment", "POST", "/set", body, "application/json", {{"Authorization", token}});
    EXPECT_EQ(reply.status, 401) << reply.body;
    EXPECT_NE(reply.json.value("error", "").find("--admin-token-file"), std::string::npos) << reply.body;
    auto stock = sys.Request("warehouse", "POST", "/stock", R"({"item_id":10,"quantity":5})", "application/json",
                             {{"Authorization", token}});
    EXPECT_EQ(stock.status, 401) << stock.body;
  }
  EXPECT_EQ(sys.Get("payment", "/set").json.value("mistakes", -1), 0);
  EXPECT_TRUE(sys.Stock().empty()) << "a refused restock must change nothing";
  // With the token it works.
  EXPECT_EQ(sys.Request("payment", "POST", "/set", body, "application/json").status, 200);
  EXPECT_EQ(sys.Get("payment", "/set").json.value("mistakes", -1), 100);
}

TEST_F(AdminEndpoints, AreOffWithoutATokenFileAndSayHowToTurnThemOn) {
  ASSERT_NO_FATAL_FAILURE(Boot());
  TempDir dir("admin");
  auto payment = payment::MakePayment(PaymentOptions(dir), {});
  ASSERT_TRUE(payment->Start().ok());
  auto reply = HttpCall(payment->http_port(), "POST", "/set", R"({"mistakes": 100})", "application/json",
                        {{"Authorization", "Bearer " + system_->admin_token()}});
  EXPECT_EQ(reply.status, 403) << reply.body;
  EXPECT_NE(reply.json.value("error", "").find("start it with --admin-token-file"), std::string::npos) << reply.body;
  payment->Stop();
}

TEST_F(AdminEndpoints, ATokenFileOthersCanReadIsRefusedAtStart) {
  ASSERT_NO_FATAL_FAILURE(Boot());
  TempDir dir("admin");
  const auto file = dir.path() / "token";
  std::ofstream(file) << "a-token-long-enough-to-be-accepted\n";
  std::filesystem::permissions(file, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write |
                                         std::filesystem::perms::group_read | std::filesystem::perms::others_read);
  auto options = PaymentOptions(dir);
  options.admin_token_file = file.string();
  auto payment = payment::MakePayment(options, {});
  auto started = payment->Start();
  ASSERT_FALSE(started.ok());
  EXPECT_NE(started.error().message.find("chmod 600"), std::string::npos) << started.error().message;
}

}  // namespace
}  // namespace sagaflow::testing
