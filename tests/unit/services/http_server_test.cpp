#include "sagaflow/runtime/http_server.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "sagaflow/runtime/http_client.hpp"

namespace sagaflow::runtime {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

// A raw TCP connection to the server under test, for requests no polite
// client would send. Reads give up after `timeout` (SO_RCVTIMEO).
class RawConnection {
 public:
  explicit RawConnection(int port, std::chrono::milliseconds timeout = 10s) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    timeval tv{static_cast<time_t>(timeout.count() / 1000), static_cast<suseconds_t>(timeout.count() % 1000 * 1000)};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  }
  ~RawConnection() { ::close(fd_); }

  bool connected() const { return connected_; }

  /// Sends all of `data`; false when the server closed or reset the connection.
  bool Send(const std::string& data) {
    size_t done = 0;
    while (done < data.size()) {
      const ssize_t n = ::send(fd_, data.data() + done, data.size() - done, MSG_NOSIGNAL);
      if (n <= 0) return false;
      done += static_cast<size_t>(n);
    }
    return true;
  }

  /// Reads one whole response (headers + Content-Length body); "" on EOF/timeout first.
  std::string ReadResponse() {
    while (true) {
      const auto end = buffer_.find("\r\n\r\n");
      if (end != std::string::npos) {
        size_t length = 0;
        const auto cl = Lower(buffer_.substr(0, end)).find("content-length:");
        if (cl != std::string::npos) length = std::stoul(buffer_.substr(cl + 15));
        if (buffer_.size() >= end + 4 + length) {
          std::string out = buffer_.substr(0, end + 4 + length);
          buffer_.erase(0, end + 4 + length);
          return out;
        }
      }
      char chunk[65536];
      const ssize_t n = ::recv(fd_, chunk, sizeof(chunk), 0);
      if (n <= 0) return "";
      buffer_.append(chunk, static_cast<size_t>(n));
    }
  }

  /// True once the server closed the connection (EOF or reset) before `timeout`.
  bool ClosedByServer() {
    char chunk[4096];
    while (true) {
      const ssize_t n = ::recv(fd_, chunk, sizeof(chunk), 0);
      if (n == 0) return true;
      if (n < 0) return errno == ECONNRESET;
    }
  }

  static std::string Lower(std::string s) {
    for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
  std::string buffer_;
};

int StatusOf(const std::string& response) {
  if (response.size() < 12) return 0;
  return std::stoi(response.substr(9, 3));
}

std::string BodyOf(const std::string& response) {
  const auto end = response.find("\r\n\r\n");
  return end == std::string::npos ? "" : response.substr(end + 4);
}

class HttpServerTest : public ::testing::Test {
 protected:
  void StartServer(HttpServerOptions options = {}) {
    server_ = std::make_unique<HttpServer>("test", options);
    server_->Route("GET", "/", [](const HttpRequest&) { return HttpResponse::Json({{"status", "ok"}}); });
    server_->Route("POST", "/echo", [](const HttpRequest& req) {
      return HttpResponse::Json({{"bytes", req.body.size()}, {"query", req.query}});
    });
    server_->Route("GET", R"(/items/(\d+))", [](const HttpRequest& req) {
      return HttpResponse::Json({{"id", req.captures.at(0)}, {"wait", req.Query("wait")}});
    });
    server_->Route("POST", "/json", [](const HttpRequest& req) { return HttpResponse::Json(ParseJsonBody(req)); });
    server_->Route("GET", "/throws", [](const HttpRequest&) -> HttpResponse { throw std::runtime_error("boom"); });
    server_->Route("GET", "/number", [](const HttpRequest& req) {
      return HttpResponse::Json({{"n", ParseIntParam(req.Query("n"), 0, 60, "n")}});
    });
    server_->Route("GET", "/block", [this](const HttpRequest&) {
      std::unique_lock lock(mu_);
      blocked_ += 1;
      cv_.notify_all();
      cv_.wait_for(lock, 20s, [this] { return released_; });
      return HttpResponse::Json({{"released", released_}});
    });
    server_->RouteDeferred("GET", "/later", [this](const HttpRequest&, HttpResponder responder) {
      std::lock_guard lock(mu_);
      responders_.push_back(responder);
      cv_.notify_all();
    });
    server_->RouteDeferred("GET", "/fallback", [](const HttpRequest&, HttpResponder responder) {
      responder.OnTimeout(50ms, [] { return HttpResponse::Json({{"from", "fallback"}}); });
    });
    server_->RouteDeferred("GET", "/never", [](const HttpRequest&, HttpResponder) {});
    server_->Route("GET", "/busy", [](const HttpRequest&) -> HttpResponse { throw HttpError{503, "busy"}; });
    server_->Route("GET", "/busy-later", [](const HttpRequest&) { return HttpResponse::Unavailable("later", 7); });
    server_->RouteDeferred("GET", "/events", [this](const HttpRequest&, HttpResponder responder) {
      auto stream = responder.StartEvents();
      std::lock_guard lock(mu_);
      streams_.push_back(stream);
      cv_.notify_all();
    });
    ASSERT_TRUE(server_->Start("127.0.0.1", 0).ok());
    port_ = server_->port();
  }

  void TearDown() override {
    {
      std::lock_guard lock(mu_);
      released_ = true;
      cv_.notify_all();
    }
    if (server_) server_->Stop();
  }

  template <class Pred>
  bool WaitFor(Pred pred, std::chrono::milliseconds limit = 10s) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, limit, pred);
  }

  std::unique_ptr<HttpServer> server_;
  int port_ = 0;
  std::mutex mu_;
  std::condition_variable cv_;
  int blocked_ = 0;
  bool released_ = false;
  std::vector<HttpResponder> responders_;
  std::vector<HttpEventStream> streams_;
};

TEST_F(HttpServerTest, AnswersJsonAndServesManyRequestsOnOneKeptAliveConnection) {
  StartServer();
  RawConnection c(port_);
  ASSERT_TRUE(c.connected());
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(c.Send("GET /items/" + std::to_string(i) + "?wait=5 HTTP/1.1\r\nHost: x\r\n\r\n"));
    const auto response = c.ReadResponse();
    ASSERT_EQ(StatusOf(response), 200) << response;
    const auto body = json::parse(BodyOf(response));
    EXPECT_EQ(body["id"], std::to_string(i));
    EXPECT_EQ(body["wait"], "5");
  }
}

TEST_F(HttpServerTest, ClientReusesItsConnectionAcrossRequests) {
  StartServer();
  HttpClient client("127.0.0.1", port_);
  for (int i = 0; i < 5; ++i) {
    auto r = client.Request("POST", "/echo?a=1%202&b=x+y", std::string(100, 'x'));
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->status, 200);
    const auto body = json::parse(r->body);
    EXPECT_EQ(body["bytes"], 100);
    EXPECT_EQ(body["query"]["a"], "1 2");
    EXPECT_EQ(body["query"]["b"], "x y");
  }
}

TEST_F(HttpServerTest, UnknownPathIs404AndUnsupportedMethodsAre405WithAllow) {
  StartServer();
  HttpClient client("127.0.0.1", port_);
  auto missing = client.Get("/nope");
  ASSERT_TRUE(missing.ok());
  EXPECT_EQ(missing->status, 404);
  EXPECT_EQ(json::parse(missing->body)["status"], 404);
  for (const std::string method : {"OPTIONS", "DELETE", "PUT", "HEAD", "BREW"}) {
    auto r = client.Request(method, "/echo");
    ASSERT_TRUE(r.ok()) << method << ": " << r.error().message;
    EXPECT_EQ(r->status, 405) << method;
    EXPECT_EQ(r->Header("Allow"), "POST") << method;
    if (method != "HEAD") {
      EXPECT_EQ(json::parse(r->body)["status"], 405) << method;
    }
  }
}

TEST_F(HttpServerTest, A503SaysWhenToRetry) {
  StartServer();
  HttpClient client("127.0.0.1", port_);
  auto thrown = client.Get("/busy");
  ASSERT_TRUE(thrown.ok()) << thrown.error().message;
  EXPECT_EQ(thrown->status, 503);
  EXPECT_EQ(thrown->Header("Retry-After"), "1");
  EXPECT_EQ(json::parse(thrown->body)["error"], "busy");
  auto returned = client.Get("/busy-later");
  ASSERT_TRUE(returned.ok()) << returned.error().message;
  EXPECT_EQ(returned->status, 503);
  EXPECT_EQ(returned->Header("Retry-After"), "7");
  auto ok = client.Get("/nope");
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->Header("Retry-After"), "");
}

TEST_F(HttpServerTest, PipelinedRequestsAreAnsweredInOrder) {
  StartServer();
  RawConnection c(port_);
  ASSERT_TRUE(c.Send("GET /items/1 HTTP/1.1\r\nHost: x\r\n\r\nGET /items/2 HTTP/1.1\r\nHost: x\r\n\r\n"));
  EXPECT_EQ(json::parse(BodyOf(c.ReadResponse()))["id"], "1");
  EXPECT_EQ(json::parse(BodyOf(c.ReadResponse()))["id"], "2");
}

TEST_F(HttpServerTest, AnHttp10RequestIsAnsweredAndTheConnectionClosed) {
  StartServer();
  RawConnection c(port_);
  ASSERT_TRUE(c.Send("GET / HTTP/1.0\r\n\r\n"));
  const auto response = c.ReadResponse();
  EXPECT_EQ(response.rfind("HTTP/1.0 200", 0), 0u) << response;
  EXPECT_TRUE(c.ClosedByServer());
}

TEST_F(HttpServerTest, ExpectContinueGetsA100BeforeTheBody) {
  StartServer();
  RawConnection c(port_);
  ASSERT_TRUE(c.Send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"));
  EXPECT_EQ(StatusOf(c.ReadResponse()), 100);
  ASSERT_TRUE(c.Send("hello"));
  const auto response = c.ReadResponse();
  ASSERT_EQ(StatusOf(response), 200) << response;
  EXPECT_EQ(json::parse(BodyOf(response))["bytes"], 5);
}

TEST_F(HttpServerTest, MalformedPercentEncodingInTheQueryIs400) {
  StartServer();
  HttpClient client("127.0.0.1", port_);
  auto r = client.Get("/items/1?wait=%zz");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(json::parse(r->body)["status"], 400);
}

TEST_F(HttpServerTest, BadContentLengthIs400WithAJsonError) {
  StartServer();
  for (const std::string value : {"-5", "abc", "5, 6"}) {
    RawConnection c(port_);
    ASSERT_TRUE(c.Send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: " + value + "\r\n\r\nhello"));
    const auto response = c.ReadResponse();
    EXPECT_EQ(StatusOf(response), 400) << value << ": " << response;
    const auto body = json::parse(BodyOf(response), nullptr, false);
    ASSERT_TRUE(body.is_object()) << response;
    EXPECT_EQ(body["status"], 400);
    EXPECT_NE(body["error"].get<std::string>().find("Content-Length"), std::string::npos) << response;
  }
}

TEST_F(HttpServerTest, DeclaredBodyOverTheLimitIs413BeforeItIsSent) {
  StartServer();
  RawConnection c(port_);
  ASSERT_TRUE(c.Send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 268435456\r\n\r\n"));
  const auto response = c.ReadResponse();
  EXPECT_EQ(StatusOf(response), 413) << response;
  EXPECT_EQ(json::parse(BodyOf(response))["status"], 413);
}

TEST_F(HttpServerTest, ChunkedBodyOverTheLimitIs413WhileItIsStillBeingSent) {
  StartServer();
  RawConnection c(port_);
  ASSERT_TRUE(c.Send("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"));
  // 1.5 MiB in 64 KiB chunks, and no last chunk: a server that buffered the
  // whole body before checking it would never answer.
  const std::string chunk = "10000\r\n" + std::string(0x10000, 'a') + "\r\n";
  for (int i = 0; i < 24; ++i) {
    if (!c.Send(chunk)) break;  // the server may stop reading once it answered
  }
  const auto response = c.ReadResponse();
  EXPECT_EQ(StatusOf(response), 413) << response.substr(0, 200);
  EXPECT_EQ(json::parse(BodyOf(response))["status"], 413);
}

TEST_F(HttpServerTest, ChunkedBodyWithinTheLimitIsServed) {
  StartServer();
  RawConnection c(port_);
  ASSERT_TRUE(c.Send("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"));
  const auto response = c.ReadResponse();
  ASSERT_EQ(StatusOf(response), 200) << response;
  EXPECT_EQ(json::parse(BodyOf(response))["bytes"], 5);
}

TEST_F(HttpServerTest, SlowClientsDoNotHoldUpTheHealthCheck) {
  HttpServerOptions options;
  options.worker_threads = 2;
  StartServer(options);
  // 80 clients that announce a body and send one byte of it.
  std::vector<std::unique_ptr<RawConnection>> slow;
  for (int i = 0; i < 80; ++i) {
    slow.push_back(std::make_unique<RawConnection>(port_));
    ASSERT_TRUE(slow.back()->Send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{"));
  }
  // 80 more that send half a request line.
  for (int i = 0; i < 80; ++i) {
    slow.push_back(std::make_unique<RawConnection>(port_));
    ASSERT_TRUE(slow.back()->Send("GET / HT"));
  }
  HttpClient client("127.0.0.1", port_);
  auto health = client.Get("/", 10s);
  ASSERT_TRUE(health.ok()) << health.error().message;
  EXPECT_EQ(health->status, 200);
}

TEST_F(HttpServerTest, ABodyThatDoesNotArriveInTimeIs408AndTheConnectionCloses) {
  HttpServerOptions options;
  options.body_timeout = 200ms;
  options.header_timeout = 200ms;
  StartServer(options);
  RawConnection body(port_);
  ASSERT_TRUE(body.Send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{"));
  const auto response = body.ReadResponse();
  EXPECT_EQ(StatusOf(response), 408) << response;
  EXPECT_TRUE(body.ClosedByServer());

  RawConnection header(port_);
  ASSERT_TRUE(header.Send("GET / HTTP/1.1\r\nHo"));
  EXPECT_EQ(StatusOf(header.ReadResponse()), 408);
  EXPECT_TRUE(header.ClosedByServer());
}

TEST_F(HttpServerTest, IdleKeptAliveConnectionsAreClosedAfterTheIdleTimeout) {
  HttpServerOptions options;
  options.idle_timeout = 100ms;
  StartServer(options);
  RawConnection c(port_);
  ASSERT_TRUE(c.Send("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
  EXPECT_EQ(StatusOf(c.ReadResponse()), 200);
  EXPECT_TRUE(c.ClosedByServer());
}

TEST_F(HttpServerTest, ConnectionsBeyondTheBoundGet503) {
  HttpServerOptions options;
  options.max_connections = 2;
  StartServer(options);
  RawConnection a(port_), b(port_);
  ASSERT_TRUE(a.Send("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
  ASSERT_EQ(StatusOf(a.ReadResponse()), 200);
  ASSERT_TRUE(b.Send("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
  ASSERT_EQ(StatusOf(b.ReadResponse()), 200);
  RawConnection third(port_);
  EXPECT_EQ(StatusOf(third.ReadResponse()), 503);
}

TEST_F(HttpServerTest, BlockingHandlersDoNotHoldUpOtherRequests) {
  HttpServerOptions options;
  options.worker_threads = 2;
  StartServer(options);
  std::thread blocked([this] {
    HttpClient client("127.0.0.1", port_);
    auto r = client.Get("/block", 30s);
    EXPECT_TRUE(r.ok());
  });
  ASSERT_TRUE(WaitFor([this] { return blocked_ == 1; }));
  HttpClient client("127.0.0.1", port_);
  auto health = client.Get("/", 10s);
  ASSERT_TRUE(health.ok()) << health.error().message;
  EXPECT_EQ(health->status, 200);
  {
    std::lock_guard lock(mu_);
    released_ = true;
    cv_.notify_all();
  }
  blocked.join();
}

TEST_F(HttpServerTest, AHandlerThatThrowsGets500AndTheServerGoesOn) {
  StartServer();
  HttpClient client("127.0.0.1", port_);
  auto r = client.Get("/throws");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 500);
  EXPECT_EQ(json::parse(r->body)["status"], 500);
  EXPECT_EQ(r->body.find("boom"), std::string::npos) << "internal details stay in the log";
  auto health = client.Get("/");
  ASSERT_TRUE(health.ok());
  EXPECT_EQ(health->status, 200);
}

TEST_F(HttpServerTest, InvalidUtf8InAJsonBodyIs400WithAJsonError) {
  StartServer();
  HttpClient client("127.0.0.1", port_);
  auto r = client.Request("POST", "/json", "{\"a\": \"\xff\xfe\"}");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 400) << r->body;
  const auto body = json::parse(r->body, nullptr, false);
  ASSERT_TRUE(body.is_object()) << r->body;
  EXPECT_EQ(body["status"], 400);
}

TEST_F(HttpServerTest, NumbersInTheQueryAreParsedStrictly) {
  StartServer();
  HttpClient client("127.0.0.1", port_);
  for (const std::string bad : {"10abc", "", "-1", "61", "1e3", " 5", "99999999999999999999"}) {
    auto r = client.Get("/number?n=" + bad);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->status, 400) << bad;
  }
  auto ok = client.Get("/number?n=60");
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(json::parse(ok->body)["n"], 60);
}

TEST_F(HttpServerTest, ADeferredRequestIsAnsweredLaterFromAnotherThread) {
  StartServer();
  std::atomic<int> status{0};
  std::string body;
  std::thread waiter([&] {
    HttpClient client("127.0.0.1", port_);
    auto r = client.Get("/later", 30s);
    if (r.ok()) {
      body = r->body;
      status.store(r->status);
    }
  });
  ASSERT_TRUE(WaitFor([this] { return responders_.size() == 1; }));
  HttpResponder responder = [this] {
    std::lock_guard lock(mu_);
    return responders_.front();
  }();
  EXPECT_TRUE(responder.pending());
  EXPECT_TRUE(responder.Send(HttpResponse::Json({{"answer", 42}})));
  EXPECT_FALSE(responder.Send(HttpResponse::Json({{"answer", 43}}))) << "the first answer wins";
  waiter.join();
  EXPECT_EQ(status.load(), 200);
  EXPECT_EQ(json::parse(body)["answer"], 42);
}

TEST_F(HttpServerTest, ADeferredRequestGetsItsFallbackWhenTheWaitRunsOut) {
  StartServer();
  HttpClient client("127.0.0.1", port_);
  auto r = client.Get("/fallback", 10s);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(json::parse(r->body)["from"], "fallback");
  auto again = client.Get("/", 10s);  // and the connection goes on
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->status, 200);
}

TEST_F(HttpServerTest, ADeferredRequestNeverAnsweredGets503AfterTheMaximumDeferral) {
  HttpServerOptions options;
  options.max_deferral = 100ms;
  StartServer(options);
  HttpClient client("127.0.0.1", port_);
  auto r = client.Get("/never", 10s);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->status, 503);
}

TEST_F(HttpServerTest, EventStreamDeliversEventsUntilTheClientStops) {
  StartServer();
  std::vector<std::string> seen;
  std::thread reader([&] {
    HttpClient client("127.0.0.1", port_);
    auto s = client.ReadEvents(
        "/events",
        [&](std::string_view event, std::string_view data) {
          seen.push_back(std::string(event) + "=" + std::string(data));
          return seen.size() < 3;
        },
        Clock::now() + 20s);
    EXPECT_TRUE(s.ok()) << s.error().message;
  });
  ASSERT_TRUE(WaitFor([this] { return streams_.size() == 1; }));
  HttpEventStream stream = [this] {
    std::lock_guard lock(mu_);
    return streams_.front();
  }();
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(stream.Send("final", "{\"n\":" + std::to_string(i) + "}"));
  reader.join();
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[0], "final={\"n\":0}");
  EXPECT_EQ(seen[2], "final={\"n\":2}");
  // The client left: the stream notices and closes.
  const auto deadline = Clock::now() + 10s;
  while (stream.open() && Clock::now() < deadline) {
    stream.Send("final", "{}");
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_FALSE(stream.open());
}

TEST_F(HttpServerTest, StopClosesPendingDeferredRequests) {
  StartServer();
  std::thread waiter([&] {
    HttpClient client("127.0.0.1", port_);
    auto r = client.Get("/later", 30s);
    EXPECT_FALSE(r.ok() && r->status == 200);
  });
  ASSERT_TRUE(WaitFor([this] { return responders_.size() == 1; }));
  server_->Stop();
  waiter.join();
  std::lock_guard lock(mu_);
  EXPECT_FALSE(responders_.front().Send(HttpResponse::Json({})));
}

}  // namespace
}  // namespace sagaflow::runtime
