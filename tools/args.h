// Flag parsing shared by the cohfs subcommands (header-only: a few helpers).
#pragma once

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "protocol/channel_key.h"

namespace cohfs {

// Parses `--name value` and `--flag` options; leaves positionals in order.
struct Args {
  std::vector<std::string> positional;
  std::vector<std::pair<std::string, std::string>> options;
  bool help = false;
  std::string error;

  bool Has(const std::string& name) const {
    for (auto& [k, v] : options) {
      if (k == name) return true;
    }
    return false;
  }
  std::string Get(const std::string& name, const std::string& def = "") const {
    for (auto& [k, v] : options) {
      if (k == name) return v;
    }
    return def;
  }
};

inline Args Parse(int argc, char** argv, const std::vector<std::string>& with_value,
                  const std::vector<std::string>& flags) {
  Args a;
  for (int i = 1; i < argc; i++) {
    std::string s = argv[i];
    if (s == "--help" || s == "-h") {
      a.help = true;
    } else if (std::find(with_value.begin(), with_value.end(), s) != with_value.end()) {
      if (i + 1 >= argc) {
        a.error = s + " needs a value";
        return a;
      }
      a.options.emplace_back(s, argv[++i]);
    } else if (std::find(flags.begin(), flags.end(), s) != flags.end()) {
      a.options.emplace_back(s, "");
    } else if (!s.empty() && s[0] == '-') {
      a.error = "unknown option " + s;
      return a;
    } else {
      a.positional.push_back(s);
    }
  }
  return a;
}

// Prints help or a usage error; returns the exit code, or -1 to go on.
inline int CheckArgs(const Args& a, size_t positionals, const char* usage) {
  if (a.help) {
    std::printf("%s", usage);
    return 0;
  }
  if (!a.error.empty() || a.positional.size() != positionals) {
    std::fprintf(stderr, "%s%s", a.error.empty() ? "" : (a.error + "\n").c_str(), usage);
    return 2;
  }
  return -1;
}

// "2", "0.5": seconds -> milliseconds in [1 ms, max_s]; -1 when not such a number.
inline int64_t ParseSecondsMs(const std::string& text, double max_s) {
  char* end = nullptr;
  double s = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || !(s >= 0.001 && s <= max_s)) return -1;
  return static_cast<int64_t>(s * 1000);
}

// A whole number of at least 1 into *out; false when it is not one.
template <typename T>
bool ParseCount(const std::string& text, T* out) {
  char* end = nullptr;
  errno = 0;
  unsigned long long n = std::strtoull(text.c_str(), &end, 10);
  if (text.empty() || text[0] == '-' || *end != '\0' || errno != 0 || n == 0 ||
      n > std::numeric_limits<T>::max()) {
    return false;
  }
  *out = static_cast<T>(n);
  return true;
}

// --key FILE into *key; false (after saying why) when it cannot be used.
inline bool LoadKey(const char* command, const std::string& path, std::optional<ChannelKey>* key) {
  auto k = ReadKeyFile(path);
  if (!k.ok()) {
    std::fprintf(stderr, "cohfs %s: %s\n", command, k.status().ToString().c_str());
    return false;
  }
  *key = *k;
  return true;
}

}  // namespace cohfs
