#include "sagaflow/runtime/http_server.hpp"

#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <charconv>
#include <deque>
#include <mutex>
#include <optional>
#include <regex>
#include <set>
#include <thread>
#include <unordered_map>

#include "sagaflow/core/log.hpp"

namespace sagaflow::runtime {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

// What a connection waiting to drain an unread body after an error answer may read.
constexpr size_t kLingerMaxBytes = 16 << 20;
constexpr auto kLingerTimeout = std::chrono::seconds(2);
// Queued bytes of an event stream beyond which its reader counts as too slow.
constexpr size_t kMaxEventBacklog = 4 << 20;
constexpr auto kEventHeartbeat = std::chrono::seconds(15);

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Percent-decoding of a query component ('+' is a space); nullopt for a broken escape.
std::optional<std::string> PercentDecode(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '+') {
      out += ' ';
    } else if (in[i] == '%') {
      if (i + 2 >= in.size()) return std::nullopt;
      const int hi = HexValue(in[i + 1]), lo = HexValue(in[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    } else {
      out += in[i];
    }
  }
  return out;
}

HttpResponse Invoke(const std::function<HttpResponse()>& fn, const std::string& what) {
  try {
    return fn();
  } catch (const HttpError& e) {
    // A 503 always means "later": say when.
    if (e.status == 503) return HttpResponse::Unavailable(e.message);
    return HttpResponse::Error(e.status, e.message);
  } catch (const nlohmann::json::exception& e) {
    return HttpResponse::Error(400, std::string("invalid JSON field: ") + e.what());
  } catch (const std::exception& e) {
    core::Logger("http")->error("{}: handler failed: {}", what, e.what());
  } catch (...) {
    core::Logger("http")->error("{}: handler failed with an unknown exception", what);
  }
  return HttpResponse::Error(500, "internal error (the service log has the details)");
}

int OpenFileLimit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY) return 1 << 20;
  return static_cast<int>(std::min<rlim_t>(limit.rlim_cur, 1 << 20));
}

class Connection;

struct RouteEntry {
  std::string pattern;
  std::regex regex;
  std::map<std::string, HttpServer::Handler> handlers;
  std::map<std::string, HttpServer::DeferredHandler> deferred;
  std::string allow;
};

// Shared by the server and its connections; outlives every connection, so a
// connection's socket never outlives the io_context it belongs to.
struct Core {
  std::string service;
  HttpServerOptions options;
  int max_connections = 0;
  asio::io_context ioc;
  std::optional<asio::thread_pool> pool;
  std::vector<RouteEntry> routes;  // fixed once Start ran
  std::atomic<bool> stopping{false};
  std::atomic<int> connections{0};
  std::mutex mu;
  std::unordered_map<Connection*, std::weak_ptr<Connection>> live;
};

}  // namespace

struct HttpResponder::State {
  std::weak_ptr<Connection> connection;
  std::atomic<bool> answered{false};
};

struct HttpEventStream::State {
  std::weak_ptr<Connection> connection;
  std::atomic<bool> open{true};
  std::atomic<size_t> queued{0};
};

namespace {

// One client connection. Every member is touched only on the connection's
// strand (the executor of its socket).
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  enum class Phase { kIdle, kHeader, kBody, kHandling, kWriting, kEvents, kLinger, kClosed };

  Connection(std::shared_ptr<Core> core, tcp::socket socket)
      : core_(std::move(core)),
        socket_(std::move(socket)),
        timer_(socket_.get_executor()),
        defer_timer_(socket_.get_executor()) {}

  ~Connection() {
    core_->connections.fetch_sub(1);
    std::lock_guard lock(core_->mu);
    core_->live.erase(this);
  }

  void Start() {
    {
      std::lock_guard lock(core_->mu);
      core_->live.emplace(this, weak_from_this());
    }
    asio::dispatch(socket_.get_executor(), [self = shared_from_this()] { self->ReadNext(); });
  }

  /// From any thread: run `fn` on this connection's strand.
  template <class Fn>
  void Post(Fn&& fn) {
    asio::post(socket_.get_executor(), std::forward<Fn>(fn));
  }

  void Close() {
    if (phase_ == Phase::kClosed) return;
    phase_ = Phase::kClosed;
    beast::error_code ec;
    timer_.cancel();
    defer_timer_.cancel();
    socket_.shutdown(tcp::socket::shutdown_both, ec);
    socket_.close(ec);
    if (pending_) pending_->answered.store(true);
    pending_.reset();
    if (events_) events_->open.store(false);
  }

  // ---- deferred answers (on the strand) ----
  void Answer(std::shared_ptr<HttpResponder::State> state, HttpResponse response) {
    if (phase_ != Phase::kHandling || state != pending_) return;
    WriteResponse(std::move(response));
  }

  void ArmDeferral(std::shared_ptr<HttpResponder::State> state, std::chrono::milliseconds after,
                   std::function<HttpResponse()> fallback) {
    if (phase_ != Phase::kHandling || state != pending_) return;
    defer_timer_.expires_after(std::min(after, core_->options.max_deferral));
    defer_timer_.async_wait([self = shared_from_this(), state, fallback = std::move(fallback),
                             what = request_line_](beast::error_code ec) {
      if (ec || state->answered.load()) return;
      if (!fallback) {
        HttpResponder(state).Send(
            HttpResponse::Error(503, "no answer within " +
                                         std::to_string(self->core_->options.max_deferral.count()) + " ms"));
        return;
      }
      // `self` keeps the connection open while the fallback runs.
      asio::post(*self->core_->pool, [self, state, fallback, what] {
        HttpResponder(state).Send(Invoke(fallback, what));
      });
    });
  }

  void StartEvents(std::shared_ptr<HttpResponder::State> state, std::shared_ptr<HttpEventStream::State> events) {
    if (phase_ != Phase::kHandling || state != pending_) {
      events->open.store(false);
      return;
    }
    pending_.reset();
    defer_timer_.cancel();
    phase_ = Phase::kEvents;
    events_ = std::move(events);
    // The body runs until the connection closes; no further request is read.
    QueueOut(
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
        "Connection: close\r\n\r\n: connected\n\n");
    WatchForClose();
    Heartbeat();
  }

  void QueueEvent(std::string frame) {
    if (phase_ != Phase::kEvents) return;
    QueueOut(std::move(frame));
  }

 private:
  void Arm(std::chrono::milliseconds after) {
    const uint64_t generation = ++timer_generation_;
    timer_.expires_after(after);
    timer_.async_wait([self = shared_from_this(), generation](beast::error_code ec) {
      if (ec || generation != self->timer_generation_) return;
      self->OnDeadline();
    });
  }

  void OnDeadline() {
    switch (phase_) {
      case Phase::kHeader:
        socket_.cancel();
        Fail(408, "the request headers did not arrive within " +
                      std::to_string(core_->options.header_timeout.count()) + " ms");
        return;
      case Phase::kBody:
        socket_.cancel();
        Fail(408, "the request body did not arrive within " + std::to_string(core_->options.body_timeout.count()) +
                      " ms");
        return;
      case Phase::kHandling:
      case Phase::kEvents:
        return;
      default:
        Close();
    }
  }

  void ReadNext() {
    if (phase_ == Phase::kClosed) return;
    if (core_->stopping.load()) return Close();
    parser_.emplace();
    parser_->header_limit(static_cast<uint32_t>(core_->options.max_header_bytes));
    parser_->body_limit(core_->options.max_body_bytes);
    keep_alive_ = false;
    allow_.clear();
    method_.clear();
    if (buffer_.size() > 0) return ReadHeader();
    // Idle: wait for the first byte of the next request under the idle
    // deadline; the header deadline starts with it.
    phase_ = Phase::kIdle;
    Arm(core_->options.idle_timeout);
    socket_.async_wait(tcp::socket::wait_read, [self = shared_from_this()](beast::error_code ec) {
      if (self->phase_ != Phase::kIdle) return;
      if (ec) return self->Close();
      self->ReadHeader();
    });
  }

  void ReadHeader() {
    phase_ = Phase::kHeader;
    Arm(core_->options.header_timeout);
    http::async_read_header(socket_, buffer_, *parser_,
                            [self = shared_from_this()](beast::error_code ec, size_t) { self->OnHeader(ec); });
  }

  void OnHeader(beast::error_code ec) {
    if (phase_ != Phase::kHeader) return;
    if (ec) return OnReadError(ec);
    const auto& req = parser_->get();
    keep_alive_ = req.keep_alive();
    version_ = req.version();
    method_ = std::string(req.method_string());
    const std::string_view target(req.target().data(), req.target().size());
    const auto question = target.find('?');
    path_ = std::string(target.substr(0, question));
    query_text_ = question == std::string_view::npos ? std::string() : std::string(target.substr(question + 1));
    request_line_ = method_ + " " + path_;
    const bool has_body = parser_->chunked() || parser_->content_length().value_or(0) > 0;

    route_ = nullptr;
    captures_.clear();
    for (const auto& r : core_->routes) {
      std::smatch m;
      if (std::regex_match(path_, m, r.regex)) {
        route_ = &r;
        for (size_t i = 1; i < m.size(); ++i) captures_.push_back(m[i].str());
        break;
      }
    }
    if (route_ == nullptr) return Reject(404, "no such resource: " + path_, has_body);
    if (!route_->handlers.count(method_) && !route_->deferred.count(method_)) {
      allow_ = route_->allow;
      return Reject(405, method_ + " is not allowed on " + path_ + "; allowed: " + allow_, has_body);
    }
    if (parser_->is_done()) return Dispatch();
    phase_ = Phase::kBody;
    Arm(core_->options.body_timeout);
    auto read_body = [self = shared_from_this()] {
      http::async_read(self->socket_, self->buffer_, *self->parser_,
                       [self](beast::error_code ec, size_t) { self->OnBody(ec); });
    };
    if (beast::iequals(req[http::field::expect], "100-continue")) {
      auto line = std::make_shared<std::string>("HTTP/1.1 100 Continue\r\n\r\n");
      asio::async_write(socket_, asio::buffer(*line), [self = shared_from_this(), line, read_body](beast::error_code ec, size_t) {
        if (self->phase_ != Phase::kBody) return;
        if (ec) return self->Close();
        read_body();
      });
      return;
    }
    read_body();
  }

  void OnBody(beast::error_code ec) {
    if (phase_ != Phase::kBody) return;
    if (ec) return OnReadError(ec);
    Dispatch();
  }

  void OnReadError(beast::error_code ec) {
    if (ec == http::error::end_of_stream || ec == http::error::partial_message || ec == asio::error::eof ||
        ec == asio::error::connection_reset || ec == asio::error::operation_aborted) {
      return Close();
    }
    if (ec == http::error::body_limit) {
      return Fail(413, "request body is larger than " + std::to_string(core_->options.max_body_bytes) + " bytes");
    }
    if (ec == http::error::header_limit) {
      return Fail(431, "request headers are larger than " + std::to_string(core_->options.max_header_bytes) +
                           " bytes");
    }
    if (ec == http::error::bad_content_length) return Fail(400, "bad Content-Length header");
    if (ec == http::error::bad_transfer_encoding) return Fail(400, "bad Transfer-Encoding header");
    if (ec == http::error::bad_chunk || ec == http::error::bad_chunk_extension) {
      return Fail(400, "malformed chunked body");
    }
    Fail(400, "malformed HTTP request: " + ec.message());
  }

  // Answers an error and closes: what is left of the request is unreadable.
  void Fail(int status, const std::string& message) {
    keep_alive_ = false;
    WriteResponse(HttpResponse::Error(status, message));
  }

  // Answers without reading the body; a request with a body closes the connection.
  void Reject(int status, const std::string& message, bool has_body) {
    if (has_body) keep_alive_ = false;
    WriteResponse(HttpResponse::Error(status, message));
  }

  void Dispatch() {
    phase_ = Phase::kHandling;
    ++timer_generation_;
    timer_.cancel();
    auto request = std::make_shared<HttpRequest>();
    request->method = method_;
    request->path = path_;
    request->captures = std::move(captures_);
    auto message = parser_->release();
    request->body = std::move(message.body());
    for (const auto& field : message) {
      request->headers[Lower(std::string(field.name_string()))] = std::string(field.value());
    }
    std::string_view rest(query_text_);
    while (!rest.empty()) {
      const auto amp = rest.find('&');
      const std::string_view pair = rest.substr(0, amp);
      rest = amp == std::string_view::npos ? std::string_view() : rest.substr(amp + 1);
      if (pair.empty()) continue;
      const auto eq = pair.find('=');
      auto key = PercentDecode(pair.substr(0, eq));
      auto value = PercentDecode(eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1));
      if (!key || !value) return WriteResponse(HttpResponse::Error(400, "malformed percent-encoding in the query"));
      request->query[*key] = *value;
    }

    auto self = shared_from_this();
    if (auto it = route_->handlers.find(method_); it != route_->handlers.end()) {
      asio::post(*core_->pool, [self, request, handler = it->second, what = request_line_] {
        HttpResponse out = Invoke([&] { return handler(*request); }, what);
        self->Post([self, out = std::move(out)]() mutable {
          if (self->phase_ == Phase::kHandling && !self->pending_) self->WriteResponse(std::move(out));
        });
      });
      return;
    }
    auto state = std::make_shared<HttpResponder::State>();
    state->connection = weak_from_this();
    pending_ = state;
    ArmDeferral(state, core_->options.max_deferral, nullptr);
    asio::post(*core_->pool, [state, request, handler = route_->deferred.at(method_), what = request_line_] {
      HttpResponder responder(state);
      try {
        handler(*request, responder);
      } catch (...) {
        responder.Send(Invoke([] () -> HttpResponse { throw; }, what));
      }
    });
  }

  void WriteResponse(HttpResponse out) {
    if (phase_ == Phase::kClosed) return;
    if (pending_) pending_->answered.store(true);
    pending_.reset();
    defer_timer_.cancel();
    phase_ = Phase::kWriting;
    response_.emplace(static_cast<http::status>(out.status), version_ ? version_ : 11);
    response_->set(http::field::content_type, out.content_type);
    if (!allow_.empty()) response_->set(http::field::allow, allow_);
    if (out.retry_after_s > 0) response_->set(http::field::retry_after, std::to_string(out.retry_after_s));
    response_->keep_alive(keep_alive_ && !core_->stopping.load());
    if (method_ == "HEAD") {
      response_->content_length(out.body.size());  // HEAD: the headers of the answer, no body
    } else {
      response_->body() = std::move(out.body);
      response_->prepare_payload();
    }
    Arm(core_->options.write_timeout);
    http::async_write(socket_, *response_, [self = shared_from_this()](beast::error_code ec, size_t) {
      if (self->phase_ != Phase::kWriting) return;
      if (ec) return self->Close();
      const bool keep = self->response_->keep_alive();
      self->response_.reset();
      if (keep) return self->ReadNext();
      self->Linger();
    });
  }

  // Closes gracefully: stop sending, then read and drop what the client still
  // sends (bounded), so that it sees our answer rather than a reset.
  void Linger() {
    phase_ = Phase::kLinger;
    beast::error_code ec;
    socket_.shutdown(tcp::socket::shutdown_send, ec);
    if (ec) return Close();
    Arm(std::chrono::duration_cast<std::chrono::milliseconds>(kLingerTimeout));
    DrainSome();
  }

  void DrainSome() {
    if (!scratch_) scratch_ = std::make_unique<std::array<char, 16384>>();
    socket_.async_read_some(asio::buffer(*scratch_), [self = shared_from_this()](beast::error_code ec, size_t n) {
      if (self->phase_ != Phase::kLinger) return;
      self->drained_ += n;
      if (ec || self->drained_ > kLingerMaxBytes) return self->Close();
      self->DrainSome();
    });
  }

  // ---- event streams ----
  void QueueOut(std::string data) {
    out_.push_back(std::move(data));
    if (!writing_) WriteNextOut();
  }

  void WriteNextOut() {
    if (phase_ != Phase::kEvents || out_.empty()) {
      writing_ = false;
      return;
    }
    writing_ = true;
    asio::async_write(socket_, asio::buffer(out_.front()), [self = shared_from_this()](beast::error_code ec, size_t n) {
      if (self->phase_ != Phase::kEvents) return;
      if (ec) return self->Close();
      if (self->events_) self->events_->queued.fetch_sub(std::min(n, self->events_->queued.load()));
      self->out_.pop_front();
      self->WriteNextOut();
    });
  }

  // The client sends nothing on an event stream; a read that ends means it left.
  void WatchForClose() {
    if (!scratch_) scratch_ = std::make_unique<std::array<char, 16384>>();
    socket_.async_read_some(asio::buffer(*scratch_), [self = shared_from_this()](beast::error_code ec, size_t) {
      if (self->phase_ != Phase::kEvents) return;
      if (ec) return self->Close();
      self->WatchForClose();
    });
  }

  void Heartbeat() {
    timer_.expires_after(kEventHeartbeat);
    timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
      if (ec || self->phase_ != Phase::kEvents) return;
      self->QueueOut(": ping\n\n");
      self->Heartbeat();
    });
  }

  std::shared_ptr<Core> core_;
  tcp::socket socket_;
  asio::steady_timer timer_;        // the deadline of the current phase
  asio::steady_timer defer_timer_;  // the deadline of a deferred answer
  uint64_t timer_generation_ = 0;
  Phase phase_ = Phase::kIdle;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::optional<http::response<http::string_body>> response_;
  bool keep_alive_ = false;
  unsigned version_ = 11;
  std::string method_, path_, query_text_, request_line_, allow_;
  const RouteEntry* route_ = nullptr;
  std::vector<std::string> captures_;
  std::shared_ptr<HttpResponder::State> pending_;
  std::shared_ptr<HttpEventStream::State> events_;
  std::deque<std::string> out_;
  bool writing_ = false;
  std::unique_ptr<std::array<char, 16384>> scratch_;
  size_t drained_ = 0;
};

}  // namespace

// ---------------------------------------------------------------------------

std::string HttpRequest::Header(const std::string& name) const {
  auto it = headers.find(Lower(name));
  return it == headers.end() ? std::string() : it->second;
}

std::string HttpRequest::Query(const std::string& name, const std::string& fallback) const {
  auto it = query.find(name);
  return it == query.end() ? fallback : it->second;
}

HttpResponse HttpResponse::Json(const nlohmann::json& body, int status) {
  return HttpResponse{status, body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace),
                      "application/json"};
}

HttpResponse HttpResponse::Error(int status, const std::string& message) {
  return Json({{"error", message}, {"status", status}}, status);
}

HttpResponse HttpResponse::Unavailable(const std::string& message, int retry_after_s) {
  auto out = Error(503, message);
  out.retry_after_s = retry_after_s;
  return out;
}

HttpResponse HttpResponse::Text(std::string body, std::string content_type) {
  return HttpResponse{200, std::move(body), std::move(content_type)};
}

std::string IdempotencyKey(const HttpRequest& request) {
  std::string key = request.Header("Idempotency-Key");
  if (key.size() > kMaxIdempotencyKey) {
    throw HttpError{400, "Idempotency-Key is longer than " + std::to_string(kMaxIdempotencyKey) + " characters"};
  }
  return key;
}

nlohmann::json ParseJsonBody(const HttpRequest& request) {
  if (request.body.empty()) throw HttpError{400, "request body is empty; expected a JSON object"};
  nlohmann::json body;
  try {
    body = nlohmann::json::parse(request.body);
  } catch (const nlohmann::json::exception& e) {
    // parse_error, and out_of_range for a number too large for a double (1e400).
    throw HttpError{400, std::string("malformed JSON: ") + e.what()};
  }
  if (!body.is_object()) throw HttpError{400, "expected a JSON object, got " + std::string(body.type_name())};
  return body;
}

int64_t ParseIntParam(const std::string& text, int64_t min, int64_t max, const std::string& what) {
  int64_t value = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (text.empty() || ec != std::errc() || ptr != end || value < min || value > max) {
    throw HttpError{400, what + " must be a whole number from " + std::to_string(min) + " to " +
                             std::to_string(max) + ", got '" + text + "'"};
  }
  return value;
}

bool HttpResponder::Send(HttpResponse response) const {
  if (!state_ || state_->answered.exchange(true)) return false;
  auto connection = state_->connection.lock();
  if (!connection) return false;
  connection->Post([connection, state = state_, response = std::move(response)]() mutable {
    // Answer() wants the request still pending: it is, from the connection's
    // side, until this runs (the flag only stops other senders).
    connection->Answer(state, std::move(response));
  });
  return true;
}

bool HttpResponder::pending() const { return state_ && !state_->answered.load(); }

void HttpResponder::OnTimeout(std::chrono::milliseconds after, std::function<HttpResponse()> fallback) const {
  if (!pending()) return;
  auto connection = state_->connection.lock();
  if (!connection) return;
  connection->Post([connection, state = state_, after, fallback = std::move(fallback)]() mutable {
    connection->ArmDeferral(state, after, std::move(fallback));
  });
}

HttpEventStream HttpResponder::StartEvents() const {
  auto events = std::make_shared<HttpEventStream::State>();
  events->open.store(false);
  if (!state_ || state_->answered.exchange(true)) return HttpEventStream(events);
  auto connection = state_->connection.lock();
  if (!connection) return HttpEventStream(events);
  events->connection = connection;
  events->open.store(true);
  connection->Post([connection, state = state_, events] { connection->StartEvents(state, events); });
  return HttpEventStream(events);
}

bool HttpEventStream::Send(std::string_view event, std::string_view data) const {
  if (!open()) return false;
  std::string frame;
  frame.reserve(event.size() + data.size() + 16);
  frame.append("event: ").append(event).append("\ndata: ").append(data).append("\n\n");
  if (state_->queued.fetch_add(frame.size()) + frame.size() > kMaxEventBacklog) {
    Close();
    return false;
  }
  auto connection = state_->connection.lock();
  if (!connection) {
    state_->open.store(false);
    return false;
  }
  connection->Post([connection, frame = std::move(frame)]() mutable { connection->QueueEvent(std::move(frame)); });
  return true;
}

bool HttpEventStream::open() const { return state_ && state_->open.load(); }

void HttpEventStream::Close() const {
  if (!state_) return;
  state_->open.store(false);
  if (auto connection = state_->connection.lock()) connection->Post([connection] { connection->Close(); });
}

// ---------------------------------------------------------------------------

struct HttpServer::Impl {
  std::shared_ptr<Core> core = std::make_shared<Core>();
  std::optional<tcp::acceptor> acceptor;
  std::optional<asio::steady_timer> accept_retry;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  std::vector<std::thread> threads;
  bool started = false;
  bool stopped = false;

  void Accept() {
    acceptor->async_accept(asio::make_strand(core->ioc), [this](beast::error_code ec, tcp::socket socket) {
      if (ec == asio::error::operation_aborted || core->stopping.load()) return;
      if (ec) {
        // Out of file descriptors (or similar): wait a little instead of spinning.
        core::Logger("http")->warn("{}: accept failed: {}", core->service, ec.message());
        accept_retry->expires_after(std::chrono::milliseconds(50));
        accept_retry->async_wait([this](beast::error_code ec2) {
          if (!ec2 && !core->stopping.load()) Accept();
        });
        return;
      }
      if (core->connections.fetch_add(1) >= core->max_connections) {
        core->connections.fetch_sub(1);
        static const std::string kBusy = [] {
          const std::string body = HttpResponse::Error(503, "too many open connections; retry later").body;
          return "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nConnection: close\r\n"
                 "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
        }();
        beast::error_code ignored;
        socket.non_blocking(true, ignored);
        socket.write_some(asio::buffer(kBusy), ignored);
        socket.close(ignored);
      } else {
        beast::error_code ignored;
        socket.set_option(tcp::no_delay(true), ignored);
        std::make_shared<Connection>(core, std::move(socket))->Start();
      }
      Accept();
    });
  }
};

HttpServer::HttpServer(std::string service, HttpServerOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->core->service = std::move(service);
  impl_->core->options = options;
}

HttpServer::~HttpServer() { Stop(); }

namespace {
RouteEntry& FindOrAddRoute(std::vector<RouteEntry>& routes, const std::string& pattern) {
  for (auto& r : routes) {
    if (r.pattern == pattern) return r;
  }
  routes.push_back({pattern, std::regex(pattern), {}, {}, ""});
  return routes.back();
}
}  // namespace

void HttpServer::Route(const std::string& method, const std::string& pattern, Handler handler) {
  FindOrAddRoute(impl_->core->routes, pattern).handlers[method] = std::move(handler);
}

void HttpServer::RouteDeferred(const std::string& method, const std::string& pattern, DeferredHandler handler) {
  FindOrAddRoute(impl_->core->routes, pattern).deferred[method] = std::move(handler);
}

core::Status HttpServer::Start(const std::string& host, int port) {
  auto& core = *impl_->core;
  if (impl_->started) return core::Error{core::Errc::kInternal, "HTTP server started twice"};
  for (auto& r : core.routes) {
    std::set<std::string> methods;
    for (const auto& [m, _] : r.handlers) methods.insert(m);
    for (const auto& [m, _] : r.deferred) methods.insert(m);
    r.allow.clear();
    for (const auto& m : methods) r.allow += (r.allow.empty() ? "" : ", ") + m;
  }
  core.max_connections = std::max(1, std::min(core.options.max_connections, OpenFileLimit() - 64));

  beast::error_code ec;
  const auto address = asio::ip::make_address(host == "localhost" ? "127.0.0.1" : host, ec);
  if (ec) return core::Error{core::Errc::kInvalidArgument, "bad HTTP host '" + host + "': " + ec.message()};
  impl_->acceptor.emplace(core.ioc);
  auto& acceptor = *impl_->acceptor;
  const tcp::endpoint endpoint(address, static_cast<uint16_t>(port));
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(core.options.listen_backlog, ec);
  if (ec) {
    impl_->acceptor.reset();
    return core::Error{core::Errc::kUnavailable, "cannot bind HTTP on " + host + ":" + std::to_string(port) + " (" +
                                                     ec.message() + "; is another instance running? try --port)"};
  }
  port_ = acceptor.local_endpoint().port();
  impl_->accept_retry.emplace(core.ioc);
  core.pool.emplace(static_cast<size_t>(std::max(1, core.options.worker_threads)));
  impl_->work.emplace(core.ioc.get_executor());
  impl_->Accept();
  for (int i = 0; i < std::max(1, core.options.io_threads); ++i) {
    impl_->threads.emplace_back([&core] { core.ioc.run(); });
  }
  impl_->started = true;
  return core::Status::Ok();
}

void HttpServer::Stop() {
  if (!impl_ || !impl_->started || impl_->stopped) return;
  impl_->stopped = true;
  auto& core = *impl_->core;
  core.stopping.store(true);
  asio::post(core.ioc, [impl = impl_.get()] {
    beast::error_code ec;
    impl->acceptor->close(ec);
    impl->accept_retry->cancel();
  });
  std::vector<std::shared_ptr<Connection>> live;
  {
    std::lock_guard lock(core.mu);
    for (auto& [_, weak] : core.live) {
      if (auto c = weak.lock()) live.push_back(std::move(c));
    }
  }
  for (auto& c : live) c->Post([c] { c->Close(); });
  live.clear();
  // Handlers still running finish (their answers go nowhere), then the I/O
  // threads run out of work and return.
  core.pool->join();
  impl_->work.reset();
  for (auto& t : impl_->threads) t.join();
  impl_->threads.clear();
}

}  // namespace sagaflow::runtime
