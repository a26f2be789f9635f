// Walks two trees and reports every difference in type, mode, owner, size,
// mtime, content, symlink target and hard-link grouping.
#pragma once

#include <string>
#include <vector>

namespace cohfs::test {

std::vector<std::string> CompareTrees(const std::string& a, const std::string& b);

}  // namespace cohfs::test
