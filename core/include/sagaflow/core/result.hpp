#pragma once
/// Result types for expected infrastructure failures (broker timeouts, full
/// queues, storage I/O errors, undecodable bytes). Business outcomes are
/// events, not errors; broken invariants abort (see SAGAFLOW_CHECK).

#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>
#include <variant>

namespace sagaflow::core {

enum class Errc {
  kInvalidArgument,  // the caller's input is malformed
  kCorrupt,          // bytes that fail verification or decoding
  kNotFound,
  kTimeout,
  kUnavailable,      // a dependency (broker, disk) cannot serve now
  kIoError,
  kFenced,           // another instance took over (Kafka transactional.id)
  kAbortRequired,    // the current Kafka transaction must be aborted
  kInternal,
};

/// An error: what failed, how to fix it, and whether trying again can help.
struct Error {
  Errc code = Errc::kInternal;
  std::string message;
  bool retryable = false;
};

/// Either a value or an Error. Check ok() before value().
template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT(implicit)
  Result(Error error) : v_(std::move(error)) {}  // NOLINT(implicit)
  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const Error& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

/// A Result without a value.
class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Error error) : error_(std::move(error)), ok_(false) {}  // NOLINT(implicit)
  static Status Ok() { return {}; }
  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error& error() const { return error_; }

 private:
  Error error_;
  bool ok_ = true;
};

[[noreturn]] void CheckFailed(const char* expr, const char* file, int line, const std::string& message);

}  // namespace sagaflow::core

/// Aborts loudly (logging first) when an invariant does not hold.
#define SAGAFLOW_CHECK(cond, message)                                               \
  do {                                                                              \
    if (!(cond)) ::sagaflow::core::CheckFailed(#cond, __FILE__, __LINE__, (message)); \
  } while (false)
