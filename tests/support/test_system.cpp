#include "support/test_system.hpp"


#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "sagaflow/notification/notification_service.hpp"
#include "sagaflow/runtime/http_client.hpp"
#include "sagaflow/orchestrator/orchestrator_service.hpp"
#include "sagaflow/payment/payment_service.hpp"
#include "sagaflow/warehouse/warehouse_service.hpp"
#include "support/kafka_env.hpp"

namespace sagaflow::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

constexpr const char* kReferenceOrder =
    R"({"order_id":0,"user_id":2,"payment":1,"notification":1,)"
    R"("created_at":"2023-11-01T16:35:39.645580261+03:00","approved_at":"2023-11-01T16:35:39.645580311+03:00",)"
    R"("sum":10000,"items":[{"item_id":10,"quantity":2,"price":45},{"item_id":15,"quantity":1,"price":10}],)"
    R"("status":1,"detail":""})";

spdlog::level::level_enum LevelFrom(std::string level) {
  if (level.empty()) {
    const char* env = std::getenv("SAGAFLOW_TEST_LOG_LEVEL");
    level = (env != nullptr && *env != '\0') ? env : "warn";
  }
  return spdlog::level::from_str(level);
}

bool IsFinal(const json& order) {
  if (!order.is_object() || !order.contains("status")) return false;
  const int status = order["status"].get<int>();
  return status == 3 || status == 4;
}

}  // namespace

json ReferenceOrder() { return json::parse(kReferenceOrder); }

const std::vector<std::string>& TestSystem::ServiceNames() {
  static const std::vector<std::string> kNames = {"order", "orchestrator", "warehouse", "payment", "notification"};
  return kNames;
}

TestSystem::TestSystem(TestSystemOptions options)
    : options_(std::move(options)),
      kafka_(TestKafka()),
      prefix_(UniquePrefix(options_.name)),
      topics_(prefix_),
      dir_("sagaflow-" + options_.name),
      previous_level_(spdlog::default_logger()->level()) {
  spdlog::set_level(LevelFrom(options_.log_level));
  // Admin endpoints are on, with a token the REST helpers send by default.
  admin_token_ = "test-admin-token-" + prefix_;
  admin_token_file_ = (dir_.path() / "admin-token").string();
  {
    std::ofstream out(admin_token_file_);
    out << admin_token_ << "\n";
  }
  std::filesystem::permissions(admin_token_file_, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
}

TestSystem::~TestSystem() {
  StopAll();
  spdlog::set_level(previous_level_);
}

void TestSystem::StopAll() {
  // Stop in parallel: each Stop waits for its loop and leaves its consumer group.
  std::vector<std::thread> stoppers;
  std::vector<std::unique_ptr<runtime::Service>> stopping;
  {
    std::lock_guard lock(mu_);
    for (auto& [name, service] : services_) stopping.push_back(std::move(service));
    services_.clear();
    ports_.clear();
  }
  for (auto& service : stopping) {
    stoppers.emplace_back([&service] {
      // Stop before destroying: ~Service() stops the loop only after the
      // subclass is gone, while the loop may still be inside it.
      service->Stop();
      service.reset();
    });
  }
  for (auto& t : stoppers) t.join();
}

std::string TestSystem::data_dir(const std::string& service) const {
  std::string dir = service;
  std::replace(dir.begin(), dir.end(), '@', '-');
  return (dir_ / dir).string();
}

std::string TestSystem::Instance(const std::string& service, int n) {
  return n <= 1 ? service : service + "@" + std::to_string(n);
}

core::Status TestSystem::StartInstance(const std::string& service, int n) {
  return StartService(Instance(service, n));
}

std::unique_ptr<runtime::Service> TestSystem::Make(const std::string& instance) const {
  const auto at = instance.find('@');
  const std::string service = instance.substr(0, at);
  runtime::ServiceOptions o;
  o.brokers = kafka_.brokers;
  o.kafka_properties = kafka_.overrides;
  o.topic_prefix = prefix_;
  o.data_dir = data_dir(instance);
  o.http_host = "127.0.0.1";
  o.http_port = 0;
  o.instance_id = at == std::string::npos ? "0" : instance.substr(at + 1);
  o.partitions = options_.partitions;
  o.admin_token_file = admin_token_file_;
  o.producer_per_task = options_.producer_per_task;
  if (service == "order") return order::MakeOrder(o, options_.order);
  if (service == "orchestrator") return orchestrator::MakeOrchestrator(o, {options_.timings});
  if (service == "warehouse") return warehouse::MakeWarehouse(o, {options_.warehouse, options_.default_stock});
  if (service == "payment") return payment::MakePayment(o, options_.payment);
  if (service == "notification") return notification::MakeNotification(o, options_.notification);
  SAGAFLOW_CHECK(false, "no service named '" + service + "'");
  return nullptr;
}

core::Status TestSystem::Start() {
  if (auto s = kafka::WaitForBroker(kafka_, 30s); !s.ok()) return s;
  // Created once here rather than by five services racing for it.
  if (auto s = kafka::CreateTopics(kafka_, topics_.All(options_.partitions), 30s); !s.ok()) return s;
  // A topic just created may have no partition leader yet, and Service::Start
  // fails (it does not retry its catch-up read). Wait until each topic reads.
  for (const auto& topic : topics_.All(options_.partitions)) {
    std::string last;
    const bool ready = WaitFor(
        [&] {
          auto end = kafka::ReadToEnd(kafka_, topic.name, {}, [](const kafka::Record&) {});
          if (!end.ok()) last = end.error().message;
          return end.ok();
        },
        30s);
    if (!ready) return core::Error{core::Errc::kUnavailable, "topic " + topic.name + " not ready: " + last, true};
  }

  const auto& names = ServiceNames();
  std::vector<std::unique_ptr<runtime::Service>> made;
  for (const auto& name : names) made.push_back(Make(name));
  std::vector<core::Status> results(names.size());
  std::vector<std::thread> starters;
  for (size_t i = 0; i < names.size(); ++i) {
    starters.emplace_back([&, i] { results[i] = made[i]->Start(); });
  }
  for (auto& t : starters) t.join();
  std::optional<core::Error> failed;
  {
    std::lock_guard lock(mu_);
    for (size_t i = 0; i < names.size(); ++i) {
      if (!results[i].ok() && !failed) {
        failed = core::Error{results[i].error().code, names[i] + ": " + results[i].error().message};
      }
      ports_[names[i]] = results[i].ok() ? made[i]->http_port() : 0;
      services_[names[i]] = std::move(made[i]);
    }
  }
  if (failed) return *failed;
  for (const auto& name : names) {
    if (auto s = WaitReady(name); !s.ok()) return s;
  }
  return core::Status::Ok();
}

core::Status TestSystem::WaitReady(const std::string& service) {
  runtime::Service* s = nullptr;
  {
    std::lock_guard lock(mu_);
    auto it = services_.find(service);
    if (it == services_.end()) return core::Error{core::Errc::kInvalidArgument, service + " is not running"};
    s = it->second.get();
  }
  // Tasks restore their state after the group assigned their partitions.
  if (!WaitFor([&] { return s->Ready() || s->Done(); }, 60s) || !s->Ready()) {
    return core::Error{core::Errc::kUnavailable, service + " did not become ready (its tasks did not restore)", true};
  }
  return core::Status::Ok();
}

core::Status TestSystem::WaitBalanced(const std::vector<std::string>& instances) {
  std::vector<runtime::Service*> running;
  {
    std::lock_guard lock(mu_);
    for (const auto& name : instances) {
      auto it = services_.find(name);
      if (it == services_.end()) return core::Error{core::Errc::kInvalidArgument, name + " is not running"};
      running.push_back(it->second.get());
    }
  }
  const bool balanced = WaitFor(
      [&] {
        size_t total = 0;
        for (auto* s : running) {
          if (!s->Ready() || s->AssignedTasks() == 0) return false;
          total += s->AssignedTasks();
        }
        return total == static_cast<size_t>(options_.partitions);
      },
      60s);
  if (!balanced) {
    return core::Error{core::Errc::kUnavailable, "the instances did not share the partitions within 60 s", true};
  }
  return core::Status::Ok();
}

void TestSystem::StopService(const std::string& service) {
  std::unique_ptr<runtime::Service> stopping;
  {
    std::lock_guard lock(mu_);
    auto it = services_.find(service);
    if (it == services_.end()) return;
    stopping = std::move(it->second);
    services_.erase(it);
    ports_.erase(service);
  }
  stopping->Stop();
  stopping.reset();  // closes its RocksDB, so a new instance can open the same directory
}

core::Status TestSystem::StartService(const std::string& service) {
  {
    std::lock_guard lock(mu_);
    if (services_.contains(service)) {
      return core::Error{core::Errc::kInvalidArgument, service + " is running; StopService it first"};
    }
  }
  auto made = Make(service);
  auto status = made->Start();
  if (!status.ok()) {
    made->Stop();
    return core::Error{status.error().code, service + ": " + status.error().message};
  }
  {
    std::lock_guard lock(mu_);
    ports_[service] = made->http_port();
    services_[service] = std::move(made);
  }
  return WaitReady(service);
}

void TestSystem::WipeData(const std::string& service) {
  SAGAFLOW_CHECK(!Running(service), "WipeData(" + service + ") while it runs: StopService it first");
  std::error_code ec;
  std::filesystem::remove_all(data_dir(service), ec);
  SAGAFLOW_CHECK(!ec, "cannot delete " + data_dir(service) + ": " + ec.message());
}

bool TestSystem::Running(const std::string& service) const {
  std::lock_guard lock(mu_);
  return services_.contains(service);
}

int TestSystem::port(const std::string& service) const {
  std::lock_guard lock(mu_);
  auto it = ports_.find(service);
  return it == ports_.end() ? 0 : it->second;
}

HttpReply TestSystem::Request(const std::string& service, const std::string& method, const std::string& path,
                              const std::string& body, const std::string& content_type,
                              const std::map<std::string, std::string>& headers) const {
  const int p = port(service);
  if (p == 0) {
    HttpReply reply;
    reply.error = service + " is not running";
    return reply;
  }
  auto with_token = headers;
  if (!with_token.contains("Authorization")) with_token["Authorization"] = "Bearer " + admin_token_;
  return HttpCall(p, method, path, body, content_type, with_token);
}

HttpReply HttpCall(int p, const std::string& method, const std::string& path, const std::string& body,
                   const std::string& content_type, const std::map<std::string, std::string>& headers) {
  HttpReply reply;
  const std::string service = "port " + std::to_string(p);
  runtime::HttpClient client("127.0.0.1", p);
  auto h = headers;
  if (!body.empty() && !content_type.empty()) h["Content-Type"] = content_type;
  auto result = client.Request(method, path, body, h, std::chrono::seconds(35));
  if (!result) {
    reply.error = method + " " + path + " on " + service + ": " + result.error().message;
    return reply;
  }
  reply.status = result->status;
  reply.body = result->body;
  for (const auto& [k, v] : result->headers) reply.headers[k] = v;
  reply.json = json::parse(reply.body, nullptr, /*allow_exceptions=*/false);
  if (reply.json.is_discarded()) reply.json = nullptr;
  return reply;
}

HttpReply TestSystem::Get(const std::string& service, const std::string& path) const {
  return Request(service, "GET", path);
}

HttpReply TestSystem::Post(const std::string& service, const std::string& path, const json& body,
                           const std::map<std::string, std::string>& headers) const {
  return Request(service, "POST", path, body.dump(), "application/json", headers);
}

core::OrderId TestSystem::PlaceOrder(const json& body, const std::string& idempotency_key) {
  std::map<std::string, std::string> headers;
  if (!idempotency_key.empty()) headers["Idempotency-Key"] = idempotency_key;
  auto reply = Post("order", "/neworder", body, headers);
  if (reply.status != 200 || !reply.json.is_object() || !reply.json.contains("order_id")) {
    ADD_FAILURE() << "POST /neworder answered " << reply.status << " " << reply.body << reply.error;
    return 0;
  }
  return reply.json["order_id"].get<core::OrderId>();
}

json TestSystem::WaitForFinal(core::OrderId id, std::chrono::milliseconds timeout) {
  return WaitForAllFinal({id}, timeout).front();
}

std::vector<json> TestSystem::WaitForAllFinal(const std::vector<core::OrderId>& ids,
                                              std::chrono::milliseconds timeout) {
  std::vector<json> last(ids.size());
  std::vector<bool> done(ids.size(), false);
  const bool all = WaitFor(
      [&] {
        bool everything = true;
        for (size_t i = 0; i < ids.size(); ++i) {
          if (done[i]) continue;
          auto reply = Get("order", "/orders/" + std::to_string(ids[i]));
          if (reply.status == 200) last[i] = reply.json;
          done[i] = IsFinal(last[i]);
          everything = everything && done[i];
        }
        return everything;
      },
      timeout);
  if (!all) {
    std::ostringstream pending;
    for (size_t i = 0; i < ids.size(); ++i) {
      if (!done[i]) pending << "\n  order " << ids[i] << ": " << last[i].dump();
    }
    ADD_FAILURE() << "orders not final after " << timeout.count() << " ms:" << pending.str();
  }
  return last;
}

void TestSystem::SetMistakes(const std::string& service, int percent) {
  auto reply = Post(service, "/set", {{"mistakes", percent}});
  EXPECT_EQ(reply.status, 200) << service << " POST /set: " << reply.body << reply.error;
}

void TestSystem::SetDelay(const std::string& service, int min_ms, int max_ms) {
  auto reply = Post(service, "/set", {{"delay_ms", json::array({min_ms, max_ms})}});
  EXPECT_EQ(reply.status, 200) << service << " POST /set: " << reply.body << reply.error;
}

std::map<core::ItemId, StockEntry> TestSystem::Stock(const std::string& warehouse) const {
  std::map<core::ItemId, StockEntry> out;
  auto reply = Get(warehouse, "/stock");
  if (reply.status != 200 || !reply.json.contains("items")) {
    ADD_FAILURE() << "GET /stock answered " << reply.status << " " << reply.body << reply.error;
    return out;
  }
  for (const auto& item : reply.json["items"]) {
    out[item["item_id"].get<core::ItemId>()] = {item["available"].get<int64_t>(), item["reserved"].get<int64_t>()};
  }
  return out;
}

double TestSystem::Metric(const std::string& service, const std::string& name,
                          const std::vector<std::string>& label_filters) const {
  auto reply = Get(service, "/metrics");
  if (reply.status != 200) {
    ADD_FAILURE() << "GET /metrics on " << service << " answered " << reply.status << reply.error;
    return 0;
  }
  const std::string series = "sagaflow_" + name + "{";
  double sum = 0;
  std::istringstream lines(reply.body);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind(series, 0) != 0) continue;
    const auto close = line.find('}');
    if (close == std::string::npos) continue;
    const std::string labels = line.substr(series.size(), close - series.size());
    bool match = true;
    for (const auto& f : label_filters) match = match && labels.find(f) != std::string::npos;
    if (match) sum += std::stod(line.substr(close + 1));
  }
  return sum;
}

std::vector<TopicRecord> TestSystem::ReadTopic(const std::string& topic) const {
  std::vector<TopicRecord> out;
  auto end = kafka::ReadToEnd(kafka_, topic, {}, [&](const kafka::Record& r) {
    auto m = core::Decode(r.value);
    out.push_back({r, m.ok() ? std::optional<core::Message>(std::move(m.value())) : std::nullopt});
  });
  if (!end.ok()) ADD_FAILURE() << "reading " << topic << ": " << end.error().message;
  return out;
}

std::map<std::string, std::vector<TopicRecord>> TestSystem::ReadTopicByKey(const std::string& topic) const {
  std::map<std::string, std::vector<TopicRecord>> out;
  for (auto& r : ReadTopic(topic)) out[r.record.key].push_back(std::move(r));
  return out;
}

void SystemTest::Boot(TestSystemOptions options) {
  options.name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
  // A parameterized test's name ends in "/<param>": not for paths and topic names.
  std::replace(options.name.begin(), options.name.end(), '/', '-');
  system_ = std::make_unique<TestSystem>(std::move(options));
  auto s = system_->Start();
  ASSERT_TRUE(s.ok()) << s.error().message;
}

::testing::AssertionResult StockConserved(const std::map<core::ItemId, StockEntry>& stock, int64_t default_stock,
                                          const std::vector<json>& final_orders,
                                          const std::map<core::ItemId, int64_t>& restocked) {
  std::map<core::ItemId, int64_t> reserved_by_ok;
  std::set<core::ItemId> touched;
  for (const auto& order : final_orders) {
    if (!IsFinal(order)) return ::testing::AssertionFailure() << "order not final: " << order.dump();
    for (const auto& item : order["items"]) {
      const auto id = item["item_id"].get<core::ItemId>();
      touched.insert(id);
      if (order["status"].get<int>() == 3) reserved_by_ok[id] += item["quantity"].get<int64_t>();
    }
  }
  for (const auto& [id, _] : restocked) touched.insert(id);
  for (const auto& [id, _] : stock) touched.insert(id);

  std::ostringstream problems;
  for (const auto id : touched) {
    const auto restock = restocked.contains(id) ? restocked.at(id) : 0;
    const auto want_reserved = reserved_by_ok.contains(id) ? reserved_by_ok.at(id) : 0;
    auto it = stock.find(id);
    if (it == stock.end()) {
      // Never written: still at the default, which is right only if nothing is held or restocked.
      if (want_reserved != 0 || restock != 0) {
        problems << "\n  item " << id << ": missing from GET /stock, want reserved " << want_reserved
                 << " and restock " << restock;
      }
      continue;
    }
    const auto& s = it->second;
    if (s.available + s.reserved != default_stock + restock) {
      problems << "\n  item " << id << ": available " << s.available << " + reserved " << s.reserved
               << " != default " << default_stock << " + restocked " << restock;
    }
    if (s.reserved != want_reserved) {
      problems << "\n  item " << id << ": reserved " << s.reserved << " but OK orders hold " << want_reserved;
    }
    if (s.available < 0 || s.reserved < 0) problems << "\n  item " << id << ": negative stock";
  }
  if (!problems.str().empty()) return ::testing::AssertionFailure() << "stock not conserved:" << problems.str();
  return ::testing::AssertionSuccess();
}

}  // namespace sagaflow::testing
