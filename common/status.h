// Status and Result: the currency of expected failures is an errno value.
//
// A bug is a CHECK (check.h); everything a caller can react to is a Status
// carrying a positive errno plus a human message for logs.
#pragma once

#include <cerrno>
#include <optional>
#include <string>
#include <utility>

#include "common/check.h"

namespace cohfs {

class [[nodiscard]] Status {
 public:
  Status() = default;
  static Status Ok() { return Status(); }
  static Status Error(int errno_value, std::string message = {}) {
    CHECK(errno_value > 0);
    Status s;
    s.errno_ = errno_value;
    s.message_ = std::move(message);
    return s;
  }

  bool ok() const { return errno_ == 0; }
  int errno_value() const { return errno_; }
  const std::string& message() const { return message_; }
  // "ENOENT: no such inode 42" style text for logs and CLI output.
  std::string ToString() const;

 private:
  int errno_ = 0;
  std::string message_;
};

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : status_(std::move(status)) { CHECK(!status_.ok()); }  // NOLINT

  bool ok() const { return value_.has_value(); }
  const Status& status() const { return status_; }
  int errno_value() const { return status_.errno_value(); }
  T& value() & {
    CHECK(ok());
    return *value_;
  }
  const T& value() const& {
    CHECK(ok());
    return *value_;
  }
  T&& value() && {
    CHECK(ok());
    return std::move(*value_);
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() { return value(); }

 private:
  std::optional<T> value_;
  Status status_;
};

}  // namespace cohfs

// Propagate a failed Status from an expression returning Status.
#define RETURN_IF_ERROR(expr)             \
  do {                                    \
    ::cohfs::Status _st = (expr);         \
    if (!_st.ok()) return _st;            \
  } while (0)

#define COHFS_CONCAT_INNER(a, b) a##b
#define COHFS_CONCAT(a, b) COHFS_CONCAT_INNER(a, b)
// ASSIGN_OR_RETURN(auto x, ResultExpr()): binds the value or returns the Status.
#define ASSIGN_OR_RETURN(lhs, expr) \
  ASSIGN_OR_RETURN_IMPL(COHFS_CONCAT(_res_, __LINE__), lhs, expr)
#define ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                          \
  if (!tmp.ok()) return tmp.status();         \
  lhs = std::move(tmp).value()
