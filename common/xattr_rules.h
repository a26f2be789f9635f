// Extended attribute rules (xattr(7), Linux xattr_permission and the
// capability LSM), shared by the server, which enforces them, and the client,
// which answers for inodes whose attributes it knows under a lock.
#pragma once

#include <sys/stat.h>

#include <string_view>

#include "common/limits.h"
#include "common/permissions.h"
#include "common/status.h"

namespace cohfs {

enum class XattrNs { kUser, kTrusted, kSecurity, kSystem };

// The syscall's checks (ERANGE) and the handler lookup (EOPNOTSUPP, EINVAL).
inline Result<XattrNs> ParseXattrName(std::string_view name) {
  if (name.empty() || name.size() > kMaxXattrNameBytes) return Status::Error(ERANGE);
  struct Prefix {
    std::string_view text;
    XattrNs ns;
  };
  static constexpr Prefix kPrefixes[] = {{"user.", XattrNs::kUser},
                                         {"trusted.", XattrNs::kTrusted},
                                         {"security.", XattrNs::kSecurity},
                                         {"system.", XattrNs::kSystem}};
  for (const Prefix& p : kPrefixes) {
    if (!name.starts_with(p.text)) continue;
    if (name.size() == p.text.size()) return Status::Error(EINVAL);
    // POSIX ACLs are not supported; no other system.* attribute exists.
    if (p.ns == XattrNs::kSystem) return Status::Error(EOPNOTSUPP);
    return p.ns;
  }
  return Status::Error(EOPNOTSUPP);
}

// xattr_permission, plus the capability LSM's rule that security.* needs root.
template <typename Inode>
Status XattrPermission(const Caller& c, const Inode& i, XattrNs ns, bool write) {
  switch (ns) {
    case XattrNs::kSecurity:
    case XattrNs::kSystem:
      if (write && !IsRoot(c)) return Status::Error(EPERM);
      return Status::Ok();
    case XattrNs::kTrusted:
      if (!IsRoot(c)) return Status::Error(write ? EPERM : ENODATA);
      return Status::Ok();
    case XattrNs::kUser:
      if (!S_ISREG(i.mode) && !S_ISDIR(i.mode)) return Status::Error(write ? EPERM : ENODATA);
      if (write && S_ISDIR(i.mode) && (i.mode & S_ISVTX) && !OwnerOrRoot(c, i)) {
        return Status::Error(EPERM);
      }
      return Permission(c, i, write ? kMayWrite : kMayRead);
  }
  return Status::Error(EOPNOTSUPP);
}

// The kernel drops a file capability on write and chown (security_inode_killpriv)
// in the writer's name: whoever may write the file may remove it (and could
// have by writing); otherwise removal is a write as above.
inline constexpr std::string_view kCapabilityXattr = "security.capability";
template <typename Inode>
Status RemoveXattrPermission(const Caller& c, const Inode& i, std::string_view name, XattrNs ns) {
  if (name == kCapabilityXattr && S_ISREG(i.mode) && DataPermission(c, i, kMayWrite).ok()) {
    return Status::Ok();
  }
  return XattrPermission(c, i, ns, /*write=*/true);
}

}  // namespace cohfs
