// The pre-shared key both ends of a secure channel hold (docs/security.md).
// A key file is 64 hex digits and a newline, mode 0600; one that group or
// others may read is refused, as ssh refuses such a private key.
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "common/status.h"

namespace cohfs {

inline constexpr size_t kChannelKeyBytes = 32;

// Wiped when destroyed.
struct ChannelKey {
  std::array<uint8_t, kChannelKeyBytes> bytes{};
  ~ChannelKey();
};

// Writes a new random key to `path` (mode 0600). EEXIST when the file exists
// and !force; with force it is replaced.
Status WriteNewKeyFile(const std::string& path, bool force);

// EACCES for a file group or others may read, EINVAL for one that is not a key.
Result<ChannelKey> ReadKeyFile(const std::string& path);

}  // namespace cohfs
