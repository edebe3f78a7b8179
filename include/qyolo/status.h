// qyolo — one error type for the whole library.
// A Status carries a code and a message that names the context (file, node, op, value).
// No exceptions cross the public API: functions return Status or Result<T>.
#pragma once

#include <cstdlib>
#include <string>
#include <utility>
#include <variant>

namespace qyolo {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,  // bad user input (flag, shape outside profile, wrong rank)
  kNotFound,         // missing file / tensor / node
  kCorrupt,          // malformed or truncated file
  kUnsupported,      // op / attribute / dtype we do not implement
  kVersionMismatch,  // engine or cache from another version / model / GPU
  kIo,               // read/write failure
  kInternal,         // a bug in qyolo
  kDevice,           // CUDA / cuDNN / cuBLASLt failure
};

const char* status_code_name(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}
  static Status ok() { return {}; }

  bool is_ok() const { return code_ == StatusCode::kOk; }
  explicit operator bool() const { return is_ok(); }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "code: message"
  std::string to_string() const;
  // Prepends context, e.g. status.with_context("node '/model.0/conv/Conv'").
  Status with_context(const std::string& context) const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status invalid_argument(std::string m) { return {StatusCode::kInvalidArgument, std::move(m)}; }
inline Status not_found(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
inline Status corrupt(std::string m) { return {StatusCode::kCorrupt, std::move(m)}; }
inline Status unsupported(std::string m) { return {StatusCode::kUnsupported, std::move(m)}; }
inline Status version_mismatch(std::string m) { return {StatusCode::kVersionMismatch, std::move(m)}; }
inline Status io_error(std::string m) { return {StatusCode::kIo, std::move(m)}; }
inline Status internal_error(std::string m) { return {StatusCode::kInternal, std::move(m)}; }
inline Status device_error(std::string m) { return {StatusCode::kDevice, std::move(m)}; }

// Result<T>: a value or a non-ok Status (C++20 stand-in for std::expected).
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {
    if (std::get<Status>(v_).is_ok()) v_ = Status(StatusCode::kInternal, "Result built from an ok Status");
  }
  bool is_ok() const { return std::holds_alternative<T>(v_); }
  explicit operator bool() const { return is_ok(); }
  const Status& status() const {
    static const Status kOk;
    return is_ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace qyolo

#define QYOLO_CONCAT_INNER(a, b) a##b
#define QYOLO_CONCAT(a, b) QYOLO_CONCAT_INNER(a, b)

// Returns the Status from the enclosing function if expr is not ok.
#define QYOLO_RETURN_IF_ERROR(expr)              \
  do {                                           \
    ::qyolo::Status qyolo_status_ = (expr);      \
    if (!qyolo_status_.is_ok()) return qyolo_status_; \
  } while (0)

// QYOLO_ASSIGN_OR_RETURN(auto x, make_x()); declares x or returns the error.
#define QYOLO_ASSIGN_OR_RETURN_IMPL(tmp, decl, expr) \
  auto tmp = (expr);                                 \
  if (!tmp.is_ok()) return tmp.status();             \
  decl = std::move(tmp).value()
#define QYOLO_ASSIGN_OR_RETURN(decl, expr) \
  QYOLO_ASSIGN_OR_RETURN_IMPL(QYOLO_CONCAT(qyolo_result_, __LINE__), decl, expr)
