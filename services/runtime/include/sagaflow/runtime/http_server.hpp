#pragma once
/// The REST edge of every service: a small router over cpp-httplib (whose
/// types stay in the .cpp) that speaks JSON both ways.
///
/// Errors are JSON too: {"error": "<message>", "status": <code>}. Unknown paths
/// answer 404, a known path with a method it does not serve 405 (with Allow),
/// bodies over 1 MiB 413. A handler that throws answers 500 and the server
/// keeps serving. Handlers run on the server's thread pool, concurrently.

#include <functional>
#include <map>
#include <memory>
#include <string>
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

  static HttpResponse Json(const nlohmann::json& body, int status = 200);
  static HttpResponse Error(int status, const std::string& message);
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

/// See the file comment. Routes are added before Start.
class HttpServer {
 public:
  using Handler = std::function<HttpResponse(const HttpRequest&)>;

  explicit HttpServer(std::string service);
  ~HttpServer();

  /// Serves `method` on paths matching the regex `pattern` (whole path).
  void Route(const std::string& method, const std::string& pattern, Handler handler);

  /// Binds host:port (port 0 picks a free one) and serves on a background thread.
  core::Status Start(const std::string& host, int port);
  /// The bound port (after Start).
  int port() const { return port_; }
  void Stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int port_ = 0;
};

}  // namespace sagaflow::runtime
