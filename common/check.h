// CHECK: a violated invariant is a bug; crash loudly with file, line and context.
#pragma once

#include <cstdio>
#include <cstdlib>

namespace cohfs {
[[noreturn]] void CheckFailed(const char* file, int line, const char* expr, const char* msg);
}  // namespace cohfs

#define CHECK(cond)                                                               \
  do {                                                                            \
    if (__builtin_expect(!(cond), 0)) ::cohfs::CheckFailed(__FILE__, __LINE__, #cond, ""); \
  } while (0)

#define CHECK_MSG(cond, msg)                                                       \
  do {                                                                             \
    if (__builtin_expect(!(cond), 0)) ::cohfs::CheckFailed(__FILE__, __LINE__, #cond, msg); \
  } while (0)
