#include "sagaflow/runtime/http_client.hpp"

#include <algorithm>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace sagaflow::runtime {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

constexpr size_t kMaxResponseBody = 256 << 20;

bool SameLower(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

}  // namespace

std::string HttpClientResponse::Header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (SameLower(k, name)) return v;
  }
  return "";
}

struct HttpClient::Impl {
  std::string host;
  int port = 0;
  asio::io_context ioc;
  tcp::socket socket{ioc};
  beast::flat_buffer buffer;
  bool connected = false;

  void Drop() {
    beast::error_code ec;
    socket.shutdown(tcp::socket::shutdown_both, ec);
    socket.close(ec);
    buffer.clear();
    connected = false;
  }

  // Runs the event loop until `done`; when the deadline passes or `stop` is set
  // first, cancels the operation, drops the connection and returns false.
  bool Run(const bool& done, Clock::time_point deadline, const std::atomic<bool>* stop = nullptr) {
    while (!done) {
      if (ioc.stopped()) ioc.restart();
      const auto now = Clock::now();
      if (now >= deadline || (stop != nullptr && stop->load())) {
        Drop();
        for (int i = 0; i < 1000 && !done; ++i) {  // the cancelled operation completes at once
          if (ioc.stopped()) ioc.restart();
          ioc.run_for(std::chrono::milliseconds(10));
        }
        return false;
      }
      ioc.run_for(std::min<Clock::duration>(deadline - now, std::chrono::milliseconds(100)));
    }
    return true;
  }

  core::Status Connect(Clock::time_point deadline) {
    if (connected) return core::Status::Ok();
    Drop();
    beast::error_code ec;
    const auto address = asio::ip::make_address(host == "localhost" ? "127.0.0.1" : host, ec);
    if (ec) return core::Error{core::Errc::kInvalidArgument, "bad host '" + host + "': " + ec.message()};
    bool done = false;
    socket.async_connect(tcp::endpoint(address, static_cast<uint16_t>(port)), [&](beast::error_code e) {
      ec = e;
      done = true;
    });
    if (!Run(done, deadline)) return core::Error{core::Errc::kTimeout, "connect to " + Where() + " timed out"};
    if (ec) {
      Drop();
      return core::Error{core::Errc::kUnavailable, "connect to " + Where() + ": " + ec.message()};
    }
    socket.set_option(tcp::no_delay(true), ec);
    connected = true;
    return core::Status::Ok();
  }

  std::string Where() const { return host + ":" + std::to_string(port); }
};

HttpClient::HttpClient(std::string host, int port) : impl_(std::make_unique<Impl>()) {
  impl_->host = std::move(host);
  impl_->port = port;
}

HttpClient::~HttpClient() = default;

void HttpClient::Close() { impl_->Drop(); }

core::Result<HttpClientResponse> HttpClient::Request(const std::string& method, const std::string& target,
                                                     const std::string& body,
                                                     const std::map<std::string, std::string>& headers,
                                                     std::chrono::milliseconds timeout) {
  auto& d = *impl_;
  const auto deadline = Clock::now() + timeout;
  http::request<http::string_body> req;
  req.version(11);
  if (const auto verb = http::string_to_verb(method); verb != http::verb::unknown) {
    req.method(verb);
  } else {
    req.method_string(method);
  }
  req.target(target);
  req.set(http::field::host, d.Where());
  bool has_type = false;
  for (const auto& [k, v] : headers) {
    req.set(k, v);
    has_type = has_type || SameLower(k, "content-type");
  }
  if (!body.empty() && !has_type) req.set(http::field::content_type, "application/json");
  req.body() = body;
  req.keep_alive(true);
  if (!body.empty() || method == "POST" || method == "PUT" || method == "PATCH") {
    req.content_length(body.size());
  }

  for (int attempt = 0;; ++attempt) {
    const bool reused = d.connected;
    if (auto s = d.Connect(deadline); !s.ok()) return s.error();
    beast::error_code ec;
    bool done = false;
    http::async_write(d.socket, req, [&](beast::error_code e, size_t) {
      ec = e;
      done = true;
    });
    if (!d.Run(done, deadline)) {
      return core::Error{core::Errc::kTimeout, method + " " + target + " on " + d.Where() + ": timed out sending"};
    }
    http::response_parser<http::string_body> parser;
    parser.body_limit(kMaxResponseBody);
    if (method == "HEAD") parser.skip(true);
    if (!ec) {
      done = false;
      http::async_read(d.socket, d.buffer, parser, [&](beast::error_code e, size_t) {
        ec = e;
        done = true;
      });
      if (!d.Run(done, deadline)) {
        return core::Error{core::Errc::kTimeout,
                           method + " " + target + " on " + d.Where() + ": no answer within " +
                               std::to_string(timeout.count()) + " ms"};
      }
    }
    if (ec) {
      d.Drop();
      // A kept-alive connection the server had closed already: send again, once.
      if (reused && attempt == 0 && !parser.got_some()) continue;
      return core::Error{core::Errc::kUnavailable, method + " " + target + " on " + d.Where() + ": " + ec.message()};
    }
    auto message = parser.release();
    HttpClientResponse out;
    out.status = static_cast<int>(message.result_int());
    for (const auto& field : message) out.headers[std::string(field.name_string())] = std::string(field.value());
    out.body = std::move(message.body());
    if (!message.keep_alive()) d.Drop();
    return out;
  }
}

core::Status HttpClient::ReadEvents(const std::string& target,
                                    const std::function<bool(std::string_view, std::string_view)>& on_event,
                                    Clock::time_point deadline, const std::atomic<bool>* stop,
                                    const std::function<void()>& on_open) {
  auto& d = *impl_;
  d.Drop();
  if (auto s = d.Connect(deadline); !s.ok()) return s;
  http::request<http::empty_body> req{http::verb::get, target, 11};
  req.set(http::field::host, d.Where());
  req.set(http::field::accept, "text/event-stream");
  beast::error_code ec;
  bool done = false;
  http::async_write(d.socket, req, [&](beast::error_code e, size_t) {
    ec = e;
    done = true;
  });
  if (!d.Run(done, deadline, stop)) return core::Error{core::Errc::kTimeout, "GET " + target + ": timed out"};
  http::response_parser<http::string_body> parser;
  if (!ec) {
    done = false;
    http::async_read_header(d.socket, d.buffer, parser, [&](beast::error_code e, size_t) {
      ec = e;
      done = true;
    });
    if (!d.Run(done, deadline, stop)) return core::Error{core::Errc::kTimeout, "GET " + target + ": no answer"};
  }
  if (ec) {
    d.Drop();
    return core::Error{core::Errc::kUnavailable, "GET " + target + " on " + d.Where() + ": " + ec.message()};
  }
  if (parser.get().result_int() != 200) {
    const auto status = parser.get().result_int();
    d.Drop();
    return core::Error{core::Errc::kUnavailable, "GET " + target + ": HTTP " + std::to_string(status)};
  }
  if (on_open) on_open();
  // The body is the raw stream from here on: "event: E\ndata: D\n\n" frames.
  std::string pending(static_cast<const char*>(d.buffer.data().data()), d.buffer.size());
  d.buffer.clear();
  std::array<char, 16384> chunk{};
  while (true) {
    size_t end;
    while ((end = pending.find("\n\n")) != std::string::npos) {
      std::string_view frame(pending.data(), end);
      std::string_view event, data;
      while (!frame.empty()) {
        const auto nl = frame.find('\n');
        const std::string_view line = frame.substr(0, nl);
        frame = nl == std::string_view::npos ? std::string_view() : frame.substr(nl + 1);
        if (line.rfind("event: ", 0) == 0) event = line.substr(7);
        if (line.rfind("data: ", 0) == 0) data = line.substr(6);
      }
      const bool go_on = event.empty() || on_event(event, data);
      pending.erase(0, end + 2);
      if (!go_on) {
        d.Drop();
        return core::Status::Ok();
      }
    }
    size_t n = 0;
    done = false;
    d.socket.async_read_some(asio::buffer(chunk), [&](beast::error_code e, size_t got) {
      ec = e;
      n = got;
      done = true;
    });
    if (!d.Run(done, deadline, stop)) {
      if (stop != nullptr && stop->load()) return core::Status::Ok();
      return core::Error{core::Errc::kTimeout, "event stream " + target + ": deadline passed"};
    }
    if (ec) {
      d.Drop();
      return core::Error{core::Errc::kUnavailable, "event stream " + target + " ended: " + ec.message()};
    }
    pending.append(chunk.data(), n);
  }
}

}  // namespace sagaflow::runtime
