#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "sagaflow/runtime/http_server.hpp"

namespace sagaflow::runtime {
namespace {

// Found by the fuzz target order_json: the parser's message quotes the bytes
// it stopped at, and writing that message as JSON threw on invalid UTF-8, so
// the client got a 500 with the exception's text instead of the 400.
TEST(HttpResponse, AnswersABodyWithInvalidUtf8WithA400ThatIsValidJson) {
  HttpRequest request;
  request.body = "{\"payment\": 1, \"created_at\": \"\xa5\xff\", \"items\": []}";
  try {
    (void)ParseJsonBody(request);
    FAIL() << "invalid UTF-8 was parsed";
  } catch (const HttpError& e) {
    const auto answer = HttpResponse::Error(e.status, e.message);
    EXPECT_EQ(answer.status, 400);
    const auto body = nlohmann::json::parse(answer.body);
    EXPECT_EQ(body["status"], 400);
    EXPECT_NE(body["error"].get<std::string>().find("malformed JSON"), std::string::npos) << answer.body;
  }
}

// Found by the fuzz target order_json: a number too large for a double made
// the parser throw out_of_range, not parse_error, which escaped as a 500.
TEST(HttpResponse, AnswersANumberTooLargeForADoubleWithA400) {
  HttpRequest request;
  request.body = R"({"payment": 6e744071, "notification": 1, "items": [{"item_id": 1, "quantity": 1}]})";
  try {
    (void)ParseJsonBody(request);
    FAIL() << "1e744071 was parsed";
  } catch (const HttpError& e) {
    EXPECT_EQ(e.status, 400);
    EXPECT_NE(e.message.find("number overflow"), std::string::npos) << e.message;
  }
}

TEST(HttpResponse, WritesInvalidUtf8InAnyStringAsReplacementCharacters) {
  const auto answer = HttpResponse::Json({{"detail", std::string("ok \xc3\x28 end")}});
  const auto body = nlohmann::json::parse(answer.body);
  EXPECT_EQ(body["detail"], "ok \xef\xbf\xbd( end");
}

}  // namespace
}  // namespace sagaflow::runtime
