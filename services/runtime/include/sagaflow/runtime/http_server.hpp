#pragma once
/// The REST edge of every service: an event-driven HTTP/1.1 server (Boost.Beast
/// on Asio; its types stay in the .cpp) with a small router that speaks JSON
/// both ways.
///
/// Connections are served by a few I/O threads that never run handler code:
/// handlers run on a worker pool, so a slow handler never holds up other
/// connections, and a slow client holds no thread at all. Connections are
/// kept alive (HTTP/1.1), the listen backlog is large, and every phase has a
/// deadline: idle between requests, headers (from their first byte), body,
/// and writing the answer. A client that misses one is answered 408 (or just
/// closed) and cannot starve anyone else. The number of open connections is
/// bounded; beyond it a new connection gets 503 and is closed.
///
/// Errors are JSON: {"error": "<message>", "status": <code>}. Unknown paths
/// answer 404; a known path with a method it does not serve (OPTIONS and HEAD
/// included) 405 with Allow; a bad Content-Length or malformed request 400;
/// a body over the limit 413, found while reading, chunked bodies included (a
/// body is never buffered beyond the limit). A handler that throws HttpError
/// answers its status, one that throws anything else 500, and the server
/// keeps serving.
///
/// Answers can be deferred: a DeferredHandler gets an HttpResponder and may
/// answer later from any thread (e.g. once a Kafka transaction committed), or
/// turn the connection into a server-sent-events stream. A deferred request
/// that is never answered gets 503 after ServerOptions::max_deferral.
///
/// Thread safety: Route before Start; Start/Stop from one thread. Handlers run
/// concurrently on the worker pool. HttpResponder and HttpEventStream may be
/// used from any thread.

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "sagaflow/core/result.hpp"

namespace sagaflow::runtime {

struct HttpRequest {
  std::string method;
  std::string path;
  std::string body;
  /// Regex groups of the route pattern, e.g. the id in "/orders/(\\d+)".
  std::vector<std::string> captures;
  /// Percent-decoded query parameters (the last one wins when repeated).
  std::map<std::string, std::string> query;
  std::map<std::string, std::string> headers;  // lower-case names
  /// A header's value, "" if absent (name is case-insensitive).
  std::string Header(const std::string& name) const;
  /// A query parameter, or `fallback`.
  std::string Query(const std::string& name, const std::string& fallback = "") const;
};

struct HttpResponse {
  int status = 200;
  std::string body;
  std::string content_type = "application/json";
  /// When > 0, sent as "Retry-After: <seconds>" (with 503: try again, the answer may differ then).
  int retry_after_s = 0;

  static HttpResponse Json(const nlohmann::json& body, int status = 200);
  static HttpResponse Error(int status, const std::string& message);
  /// 503 with a JSON error and Retry-After: a retry after that many seconds can succeed.
  static HttpResponse Unavailable(const std::string& message, int retry_after_s = 1);
  static HttpResponse Text(std::string body, std::string content_type = "text/plain; version=0.0.4");
};

/// Thrown by handlers (e.g. through ParseJsonBody) to answer a 4xx.
struct HttpError {
  int status;
  std::string message;
};

/// Parses a request body as a JSON object; throws HttpError(400) with the
/// parser's position and reason otherwise.
nlohmann::json ParseJsonBody(const HttpRequest& request);

/// The request's Idempotency-Key header ("" when absent); throws HttpError(400)
/// when it is longer than kMaxIdempotencyKey characters.
constexpr size_t kMaxIdempotencyKey = 200;
std::string IdempotencyKey(const HttpRequest& request);

/// Parses a whole decimal integer in [min, max] (no sign other than a leading
/// '-', no spaces, no trailing characters: "10abc" is refused); throws
/// HttpError(400) naming `what` otherwise.
int64_t ParseIntParam(const std::string& text, int64_t min, int64_t max, const std::string& what);

/// An open server-sent-events stream (text/event-stream). Copyable handle; the
/// stream closes when the client goes away, on Close, or when the server stops.
class HttpEventStream {
 public:
  HttpEventStream() = default;
  /// Queues one event ("event: <event>\ndata: <data>\n\n"; `data` must not
  /// contain a newline). Returns false once the stream is closed, or when the
  /// client reads too slowly and the stream was closed for that.
  bool Send(std::string_view event, std::string_view data) const;
  bool open() const;
  void Close() const;

  struct State;
  explicit HttpEventStream(std::shared_ptr<State> state) : state_(std::move(state)) {}

 private:
  std::shared_ptr<State> state_;
};

/// Answers one deferred request, from any thread. Copyable handle; the first
/// Send (or StartEvents) wins, later ones return false.
class HttpResponder {
 public:
  /// An empty handle: Send returns false.
  HttpResponder() = default;
  /// Answers the request. False if it was answered already or the client is gone.
  bool Send(HttpResponse response) const;
  /// Whether the request is still unanswered.
  bool pending() const;
  /// After `after`, if the request is still unanswered, runs `fallback` on the
  /// worker pool and sends what it returns (replaces the server's default
  /// max_deferral; `after` is capped at it).
  void OnTimeout(std::chrono::milliseconds after, std::function<HttpResponse()> fallback) const;
  /// Answers 200 text/event-stream and returns the stream (an empty, closed one
  /// if the request was answered already).
  HttpEventStream StartEvents() const;

  struct State;
  explicit HttpResponder(std::shared_ptr<State> state) : state_(std::move(state)) {}

 private:
  std::shared_ptr<State> state_;
};

/// Limits and pool sizes; the defaults suit the services.
struct HttpServerOptions {
  int io_threads = 1;
  int worker_threads = 16;
  /// Open connections at most (also capped by the process's open-file limit).
  int max_connections = 10'000;
  int listen_backlog = 4096;
  size_t max_body_bytes = 1 << 20;
  size_t max_header_bytes = 16 << 10;
  std::chrono::milliseconds idle_timeout{60'000};    // between requests on a kept-alive connection
  std::chrono::milliseconds header_timeout{10'000};  // first byte of a request to the end of its headers
  std::chrono::milliseconds body_timeout{30'000};    // end of headers to the end of the body
  std::chrono::milliseconds write_timeout{30'000};   // writing one answer
  std::chrono::milliseconds max_deferral{120'000};   // a deferred request unanswered this long gets 503
};

/// See the file comment. Routes are added before Start.
class HttpServer {
 public:
  using Handler = std::function<HttpResponse(const HttpRequest&)>;
  using DeferredHandler = std::function<void(const HttpRequest&, HttpResponder)>;

  explicit HttpServer(std::string service, HttpServerOptions options = {});
  ~HttpServer();

  /// Serves `method` on paths matching the regex `pattern` (whole path).
  void Route(const std::string& method, const std::string& pattern, Handler handler);
  /// The same with an answer that may come later (see HttpResponder). The
  /// handler itself runs on the worker pool and should return promptly.
  void RouteDeferred(const std::string& method, const std::string& pattern, DeferredHandler handler);

  /// Binds host:port (port 0 picks a free one) and serves on background threads.
  core::Status Start(const std::string& host, int port);
  /// The bound port (after Start).
  int port() const { return port_; }
  /// Closes every connection (pending deferred requests and event streams
  /// included) and joins the threads. Idempotent.
  void Stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int port_ = 0;
};

}  // namespace sagaflow::runtime
