#include "sagaflow/runtime/order_json.hpp"

#include <gtest/gtest.h>

#include <string>

#include "sagaflow/runtime/http_server.hpp"

namespace sagaflow::runtime {
namespace {

using nlohmann::json;

// The order exactly as the reference system posts it.
constexpr const char* kReferenceOrder =
    R"({"order_id":0,"user_id":2,"payment":1,"notification":1,)"
    R"("created_at":"2023-11-01T16:35:39.645580261+03:00","approved_at":"2023-11-01T16:35:39.645580311+03:00",)"
    R"("sum":10000,"items":[{"item_id":10,"quantity":2,"price":45},{"item_id":15,"quantity":1,"price":10}],)"
    R"("status":1,"detail":""})";

json Reference() { return json::parse(kReferenceOrder); }

// Runs OrderFromJson on a body it must refuse; returns the 400's message.
std::string Rejection(const json& body) {
  try {
    (void)OrderFromJson(body);
  } catch (const HttpError& e) {
    EXPECT_EQ(e.status, 400) << e.message;
    return e.message;
  }
  ADD_FAILURE() << "accepted " << body.dump();
  return "";
}

#define EXPECT_REJECTED_NAMING(body, text)                              \
  do {                                                                  \
    const std::string message_ = Rejection(body);                       \
    EXPECT_NE(message_.find(text), std::string::npos) << message_;      \
  } while (false)

TEST(OrderJson, AcceptsReferenceOrderAndMapsEveryField) {
  const core::Order o = OrderFromJson(Reference());
  EXPECT_EQ(o.order_id, 0);
  EXPECT_EQ(o.user_id, 2);
  EXPECT_EQ(o.payment, core::PaymentType::kCard);
  EXPECT_EQ(o.notification, core::NotificationType::kEmail);
  EXPECT_EQ(o.created_at, "2023-11-01T16:35:39.645580261+03:00");
  EXPECT_EQ(o.approved_at, "2023-11-01T16:35:39.645580311+03:00");
  EXPECT_EQ(o.sum, 10000);
  ASSERT_EQ(o.items.size(), 2u);
  EXPECT_EQ(o.items[0], (core::Item{10, 2, 45}));
  EXPECT_EQ(o.items[1], (core::Item{15, 1, 10}));
}

TEST(OrderJson, MapsSbpAndSmsCodes) {
  json body = Reference();
  body["payment"] = 2;
  body["notification"] = 2;
  body["order_id"] = 77;
  const core::Order o = OrderFromJson(body);
  EXPECT_EQ(o.payment, core::PaymentType::kSbp);
  EXPECT_EQ(o.notification, core::NotificationType::kSms);
  EXPECT_EQ(o.order_id, 77);
}

TEST(OrderJson, RoundTripsThroughOrderToJson) {
  const core::Order o = OrderFromJson(Reference());
  EXPECT_EQ(OrderFromJson(OrderToJson(o)), o);
}

TEST(OrderJson, RejectsNonObjectBody) {
  EXPECT_REJECTED_NAMING(json::array(), "expected a JSON object");
}

TEST(OrderJson, RejectsANulCharacterInAString) {
  json body = Reference();
  body["created_at"] = std::string("2023-11-01\0T16:35", 16);
  EXPECT_REJECTED_NAMING(body, "created_at");
  body = Reference();
  body["detail"] = std::string("a\0b", 3);
  EXPECT_REJECTED_NAMING(body, "NUL");
}

TEST(OrderJson, RejectsMissingItems) {
  json body = Reference();
  body.erase("items");
  EXPECT_EQ(Rejection(body), "missing field \"items\"");
}

TEST(OrderJson, RejectsEmptyItems) {
  json body = Reference();
  body["items"] = json::array();
  EXPECT_REJECTED_NAMING(body, "field \"items\" is empty");
}

TEST(OrderJson, RejectsItemsThatAreNotAnArray) {
  json body = Reference();
  body["items"] = json::object({{"item_id", 10}, {"quantity", 2}});
  EXPECT_REJECTED_NAMING(body, "field \"items\" must be an array");
}

TEST(OrderJson, RejectsZeroQuantity) {
  json body = Reference();
  body["items"][1]["quantity"] = 0;
  const std::string message = Rejection(body);
  EXPECT_NE(message.find("items[1]"), std::string::npos) << message;
  EXPECT_NE(message.find("quantity"), std::string::npos) << message;
}

TEST(OrderJson, RejectsNegativeQuantity) {
  json body = Reference();
  body["items"][0]["quantity"] = -2;
  const std::string message = Rejection(body);
  EXPECT_NE(message.find("items[0]"), std::string::npos) << message;
  EXPECT_NE(message.find("\"quantity\""), std::string::npos) << message;
}

TEST(OrderJson, RejectsQuantityGivenAsString) {
  json body = Reference();
  body["items"][0]["quantity"] = "2";
  const std::string message = Rejection(body);
  EXPECT_NE(message.find("items[0]: field \"quantity\" must be an integer"), std::string::npos) << message;
}

TEST(OrderJson, RejectsUnknownPaymentType) {
  json body = Reference();
  body["payment"] = 3;
  EXPECT_REJECTED_NAMING(body, "unknown payment type 3");
}

TEST(OrderJson, RejectsUnknownNotificationType) {
  json body = Reference();
  body["notification"] = 0;
  EXPECT_REJECTED_NAMING(body, "unknown notification type 0");
}

TEST(OrderJson, RejectsMissingPayment) {
  json body = Reference();
  body.erase("payment");
  EXPECT_EQ(Rejection(body), "missing field \"payment\"");
}

TEST(OrderJson, RejectsOrderIdGivenAsString) {
  json body = Reference();
  body["order_id"] = "0";
  EXPECT_REJECTED_NAMING(body, "field \"order_id\" must be an integer");
}

TEST(OrderJson, RejectsFractionalSum) {
  json body = Reference();
  body["sum"] = 10.5;
  EXPECT_REJECTED_NAMING(body, "field \"sum\" must be an integer");
}

TEST(OrderJson, RejectsItemThatIsNotAnObject) {
  json body = Reference();
  body["items"][1] = 15;
  EXPECT_EQ(Rejection(body), "items[1] must be an object");
}

TEST(OrderJson, RejectsNegativeItemId) {
  json body = Reference();
  body["items"][0]["item_id"] = -10;
  EXPECT_REJECTED_NAMING(body, "items[0]: field \"item_id\" must be >= 0");
}

TEST(OrderJson, RejectsCreatedAtThatIsNotAString) {
  json body = Reference();
  body["created_at"] = 1698845739;
  EXPECT_REJECTED_NAMING(body, "field \"created_at\" must be a string");
}

core::OrderRecord SampleRecord(core::OrderStatus status) {
  core::OrderRecord r;
  r.order = OrderFromJson(Reference());
  r.order.order_id = 31;
  r.status = status;
  r.detail = "payment declined";
  r.steps = {core::StepRecord{core::Step::kReserveStock, 1, true, 1'700'000'000'123, "reserved"},
             core::StepRecord{core::Step::kCharge, 2, false, 1'700'000'001'004, "insufficient funds"}};
  r.accepted_at_ms = 1'700'000'000'000;
  return r;
}

TEST(OrderJson, OrderRecordToJsonCarriesStatusDetailAndSteps) {
  const json out = OrderRecordToJson(SampleRecord(core::OrderStatus::kNotOk));
  EXPECT_EQ(out.at("order_id"), 31);
  ASSERT_TRUE(out.at("status").is_number_integer());
  EXPECT_EQ(out.at("status"), 4);
  EXPECT_EQ(out.at("status_text"), "NOT OK");
  EXPECT_EQ(out.at("detail"), "payment declined");
  EXPECT_EQ(out.at("items").size(), 2u);

  const json& steps = out.at("steps");
  ASSERT_TRUE(steps.is_array());
  ASSERT_EQ(steps.size(), 2u);
  EXPECT_EQ(steps[0].at("service"), "warehouse");
  EXPECT_EQ(steps[0].at("step"), "reserve_stock");
  EXPECT_EQ(steps[0].at("result"), "OK");
  EXPECT_EQ(steps[0].at("time"), "2023-11-14T22:13:20.123Z");
  EXPECT_EQ(steps[0].at("detail"), "reserved");
  EXPECT_EQ(steps[1].at("service"), "payment");
  EXPECT_EQ(steps[1].at("result"), "NOT OK");
  EXPECT_EQ(steps[1].at("time"), "2023-11-14T22:13:21.004Z");
  EXPECT_EQ(steps[1].at("detail"), "insufficient funds");
  EXPECT_EQ(steps[1].at("attempt"), 2);

  EXPECT_EQ(out.at("accepted_at"), "2023-11-14T22:13:20.000Z");
  EXPECT_TRUE(out.at("finished_at").is_null());
}

TEST(OrderJson, OrderRecordToJsonNamesOkStatus) {
  core::OrderRecord r = SampleRecord(core::OrderStatus::kOk);
  r.finished_at_ms = 1'700'000'002'500;
  const json out = OrderRecordToJson(r);
  EXPECT_EQ(out.at("status"), 3);
  EXPECT_EQ(out.at("status_text"), "OK");
  EXPECT_EQ(out.at("finished_at"), "2023-11-14T22:13:22.500Z");
}

TEST(OrderJson, FormatTimeIsUtcWithMilliseconds) {
  EXPECT_EQ(FormatTime(0), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(FormatTime(999), "1970-01-01T00:00:00.999Z");
  // 2023-11-01T16:35:39.645+03:00, the reference order's created_at.
  EXPECT_EQ(FormatTime(1'698'845'739'645), "2023-11-01T13:35:39.645Z");
  EXPECT_EQ(FormatTime(1'700'000'000'007), "2023-11-14T22:13:20.007Z");
}

}  // namespace
}  // namespace sagaflow::runtime
