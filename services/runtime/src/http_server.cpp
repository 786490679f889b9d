#include "sagaflow/runtime/http_server.hpp"

#include <httplib.h>

#include <algorithm>
#include <set>
#include <thread>

#include "sagaflow/core/log.hpp"

namespace sagaflow::runtime {
namespace {
constexpr size_t kMaxBody = 1 << 20;
constexpr size_t kWorkerThreads = 64;

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

std::string ReasonFor(int status) {
  switch (status) {
    case 404: return "no such resource";
    case 405: return "method not allowed";
    case 413: return "request body is larger than 1 MiB";
    case 400: return "bad request";
    default: return "HTTP error " + std::to_string(status);
  }
}
}  // namespace

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

HttpResponse HttpResponse::Text(std::string body, std::string content_type) {
  return HttpResponse{200, std::move(body), std::move(content_type)};
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

struct HttpServer::Impl {
  struct RouteEntry {
    std::string pattern;
    std::map<std::string, Handler> by_method;
  };
  std::string service;
  httplib::Server server;
  std::vector<RouteEntry> routes;
  std::thread thread;
};

HttpServer::HttpServer(std::string service) : impl_(std::make_unique<Impl>()) {
  impl_->service = std::move(service);
}

HttpServer::~HttpServer() { Stop(); }

void HttpServer::Route(const std::string& method, const std::string& pattern, Handler handler) {
  for (auto& r : impl_->routes) {
    if (r.pattern == pattern) {
      r.by_method[method] = std::move(handler);
      return;
    }
  }
  impl_->routes.push_back({pattern, {{method, std::move(handler)}}});
}

core::Status HttpServer::Start(const std::string& host, int port) {
  auto& server = impl_->server;
  auto log = core::Logger("http");
  server.set_payload_max_length(kMaxBody);
  // Handlers wait for a Kafka transaction (up to seconds when the broker is slow): give
  // concurrent clients threads, and do not let idle keep-alive connections hold them long.
  server.new_task_queue = [] { return new httplib::ThreadPool(kWorkerThreads); };
  server.set_keep_alive_timeout(2);
  server.set_keep_alive_max_count(1000);
  server.set_error_handler([](const httplib::Request&, httplib::Response& res) {
    if (!res.body.empty()) return;
    res.set_content(HttpResponse::Error(res.status, ReasonFor(res.status)).body, "application/json");
  });
  server.set_exception_handler([log](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
    std::string what = "unknown error";
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    log->error("{} {}: handler failed: {}", req.method, req.path, what);
    res.status = 500;
    res.set_content(HttpResponse::Error(500, "internal error: " + what).body, "application/json");
  });

  static const std::vector<std::string> kMethods = {"GET", "POST", "PUT", "DELETE", "PATCH"};
  for (const auto& route : impl_->routes) {
    std::string allow;
    for (const auto& [m, _] : route.by_method) allow += (allow.empty() ? "" : ", ") + m;
    auto dispatch = [route, allow, log](const httplib::Request& req, httplib::Response& res) {
      auto it = route.by_method.find(req.method);
      HttpResponse out;
      if (it == route.by_method.end()) {
        res.set_header("Allow", allow);
        out = HttpResponse::Error(405, req.method + " is not allowed on " + req.path + "; allowed: " + allow);
      } else {
        HttpRequest in;
        in.method = req.method;
        in.path = req.path;
        in.body = req.body;
        for (size_t i = 1; i < req.matches.size(); ++i) in.captures.push_back(req.matches[i].str());
        for (const auto& [k, v] : req.params) in.query[k] = v;
        for (const auto& [k, v] : req.headers) in.headers[Lower(k)] = v;
        try {
          out = it->second(in);
        } catch (const HttpError& e) {
          out = HttpResponse::Error(e.status, e.message);
        } catch (const nlohmann::json::exception& e) {
          out = HttpResponse::Error(400, std::string("invalid JSON field: ") + e.what());
        }
      }
      res.status = out.status;
      res.set_content(out.body, out.content_type.c_str());
    };
    for (const auto& m : kMethods) {
      if (m == "GET") server.Get(route.pattern, dispatch);
      if (m == "POST") server.Post(route.pattern, dispatch);
      if (m == "PUT") server.Put(route.pattern, dispatch);
      if (m == "DELETE") server.Delete(route.pattern, dispatch);
      if (m == "PATCH") server.Patch(route.pattern, dispatch);
    }
  }

  if (port == 0) {
    port_ = server.bind_to_any_port(host);
    if (port_ < 0) return core::Error{core::Errc::kUnavailable, "cannot bind HTTP on " + host};
  } else {
    if (!server.bind_to_port(host, port)) {
      return core::Error{core::Errc::kUnavailable,
                         "cannot bind HTTP on " + host + ":" + std::to_string(port) +
                             " (is another instance running? try --port)"};
    }
    port_ = port;
  }
  impl_->thread = std::thread([this] { impl_->server.listen_after_bind(); });
  // stop() is a no-op until the server runs: wait, so that a Stop right after Start cannot hang.
  for (int i = 0; i < 500 && !impl_->server.is_running(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return core::Status::Ok();
}

void HttpServer::Stop() {
  if (impl_ && impl_->thread.joinable()) {
    impl_->server.stop();
    impl_->thread.join();
  }
}

}  // namespace sagaflow::runtime
