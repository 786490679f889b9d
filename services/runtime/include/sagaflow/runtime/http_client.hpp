#pragma once
/// A small blocking HTTP/1.1 client for loopback use: the load driver, the
/// tests and the tools. One connection, kept alive between requests and
/// reopened when the server closed it (a request that failed on a reused
/// connection before any answer arrived is sent once more on a fresh one, so
/// only use it for requests that may be repeated: GETs, and POSTs with an
/// Idempotency-Key). Every call has a deadline. Boost types stay in the .cpp.
///
/// Thread safety: one HttpClient per thread (calls on one object are not
/// concurrent-safe); separate objects are independent.

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "sagaflow/core/result.hpp"

namespace sagaflow::runtime {

struct HttpClientResponse {
  int status = 0;
  std::string body;
  /// Header names as the server sent them.
  std::map<std::string, std::string> headers;
  /// A header's value, "" if absent (name is case-insensitive).
  std::string Header(std::string_view name) const;
};

class HttpClient {
 public:
  HttpClient(std::string host, int port);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  /// Sends one request and reads the answer. A transport failure (refused,
  /// reset, deadline passed) is an Error (kUnavailable, or kTimeout); any HTTP
  /// status is a value. Content-Type is application/json when `body` is not
  /// empty, unless `headers` has one.
  core::Result<HttpClientResponse> Request(const std::string& method, const std::string& target,
                                           const std::string& body = "",
                                           const std::map<std::string, std::string>& headers = {},
                                           std::chrono::milliseconds timeout = std::chrono::seconds(30));
  core::Result<HttpClientResponse> Get(const std::string& target,
                                       std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
    return Request("GET", target, "", {}, timeout);
  }

  /// Opens a server-sent-events stream at `target` and calls on_event(event,
  /// data) for each event until it returns false, the server closes the
  /// stream, `stop` becomes true, or `deadline` passes. `on_open` (optional)
  /// runs once the server accepted the stream. Returns Ok when on_event or
  /// `stop` ended it, an Error otherwise (the answer when it was not 200).
  core::Status ReadEvents(const std::string& target,
                          const std::function<bool(std::string_view event, std::string_view data)>& on_event,
                          std::chrono::steady_clock::time_point deadline, const std::atomic<bool>* stop = nullptr,
                          const std::function<void()>& on_open = {});

  /// Drops the connection (the next request opens a new one).
  void Close();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sagaflow::runtime
