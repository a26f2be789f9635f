#include "common/status.h"

#include <cstring>

namespace cohfs {

std::string Status::ToString() const {
  if (ok()) return "OK";
  std::string s = strerrorname_np(errno_) ? strerrorname_np(errno_) : "E?";
  if (!message_.empty()) s += ": " + message_;
  return s;
}

}  // namespace cohfs
