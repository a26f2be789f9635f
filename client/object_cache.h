// ObjectCache: what this client knows about inodes and directory entries, and
// the lock mode that makes each cacheable (DESIGN §6).
//
// An inode is cached while the kernel references it (nlookup > 0) and the
// client holds a lock on it. A directory is "complete" when its whole listing
// came in a leaf: then a name missing from it is a negative lookup answered
// locally. Most changes this client makes go to the server first and are
// applied here from the reply; attribute changes of inodes held EXCLUSIVE are
// applied here first (UpdateAttr) and reach the server later through the
// WritebackLog. Each node remembers the log sequence of its last local change
// so that a reply older than that change cannot undo it. A lock given back
// (recall, release) is remembered with the newest request id sent by then, so
// a grant in a reply that crossed it on the wire is not believed.
// Thread-safe: one mutex (rank: leaf; never held across RPCs or FUSE replies).
#pragma once

#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common/fs_types.h"
#include "common/status.h"

namespace cohfs {

class ObjectCache {
 public:
  enum class LookupResult { kUnknown, kFound, kNegative };

  // Where a reply stands: the writeback sequence when its request left
  // (local changes newer than that win) and the request's id (grants in
  // replies to requests sent before a lock was given back are void).
  struct ReplyOrder {
    ReplyOrder(uint64_t seq = 0, uint64_t id = UINT64_MAX) : log_seq(seq), request_id(id) {}
    uint64_t log_seq;
    uint64_t request_id;
  };

  // Records attributes from a reply, and the lock that came with them.
  // Attributes the reply predates (a later local change) are kept; with
  // `data_held` (file data written here that the server lacks) the size and
  // times are kept too, the rest (link count, mode) is the reply's. Returns
  // the attributes the cache now holds.
  Attr PutAttr(const Attr& attr, LockMode lock, ReplyOrder order, bool data_held = false);

  // A recall or a release: the lock drops to `keep`; grants in replies to
  // requests up to `last_request_id` are capped at `keep`. Dropping to NONE
  // forgets a directory's names; returns the names the kernel was told about
  // in it (to invalidate).
  std::vector<std::string> Revoke(InodeId ino, LockMode keep, uint64_t last_request_id);
  // Forgets revocations older than every request still unanswered.
  void PruneRevocations(uint64_t oldest_unanswered_id);
  // The kernel caches `name` in `dir` (positive or negative) while `dir` is held.
  void NoteKernelName(InodeId dir, const std::string& name);
  // As NoteKernelName, only while `dir` is held; false (nothing noted) else.
  bool NoteKernelNameIfHeld(InodeId dir, const std::string& name);
  // A local change: runs `change` on a copy of the inode's attributes and keeps
  // the result when it returns Ok, marking it as local change `seq`. nullopt
  // when the inode is not cached under EXCLUSIVE (the server must decide).
  std::optional<Result<Attr>> UpdateAttr(InodeId ino, uint64_t seq,
                                         const std::function<Status(Attr&)>& change);
  // Local namespace changes (DESIGN §5). Each needs the directories it changes
  // complete and every inode it changes cached, all held EXCLUSIVE; else
  // nullopt (the server must decide). The rules check on copies of the
  // attributes and change them as the server would; on Ok the copies and the
  // names are kept, marked as local change `seq`.
  //
  // A create of `name` in `dir`: `make` checks permissions on the directory,
  // fills in the new inode and updates the directory. The new inode is held
  // EXCLUSIVE (a new directory is complete and empty; a symlink keeps
  // `symlink_target`). EEXIST if the name is taken.
  std::optional<Result<Attr>> CreateLocally(
      InodeId dir, const std::string& name, uint64_t seq,
      const std::function<Status(Attr& dir, Attr& child)>& make,
      const std::string& symlink_target = {});
  // Unlink or rmdir (`want_dir`): `rules` gets whether the child is an empty
  // directory. Returns the child's attributes after the change. ENOENT.
  using RemoveRules = std::function<Status(Attr& dir, Attr& child, bool child_empty)>;
  std::optional<Result<Attr>> RemoveLocally(InodeId dir, const std::string& name, uint64_t seq,
                                            const RemoveRules& rules);
  // A rename within one directory or, when neither the moved inode nor the
  // victim is a directory, across two (the server's loop check decides those). `to_dir`
  // aliases `from_dir` when they are one directory.
  struct RenameAttrs {
    Attr& from_dir;
    Attr& to_dir;
    Attr& moved;
    Attr* victim;       // the inode at the new name, if any
    bool victim_empty;  // the victim is an empty directory
  };
  std::optional<Status> RenameLocally(InodeId from_dir, const std::string& name, InodeId to_dir,
                                      const std::string& new_name, uint32_t flags, uint64_t seq,
                                      const std::function<Status(RenameAttrs&)>& rules);
  // After a rename the server made: what Lookup said before it was sent of
  // the moved inode (null: not found) and of the victim moves the names, or,
  // when that cannot tell what changed, the listings are forgotten. The
  // victim may be the moved inode under another name: then nothing changed.
  void NoteRenamed(InodeId dir, const std::string& name, InodeId new_dir,
                   const std::string& new_name, bool exchange, const Attr* moved,
                   LookupResult victim_state, const Attr& victim);
  // A new name `name` in `dir` for `ino`. EEXIST. Returns the inode's attributes.
  std::optional<Result<Attr>> LinkLocally(
      InodeId ino, InodeId dir, const std::string& name, uint64_t seq,
      const std::function<Status(Attr& dir, Attr& child)>& rules);
  // The target of a symlink this client made (only while locked).
  std::optional<std::string> SymlinkTarget(InodeId ino) const;
  // Extended attributes, when this client knows all of an inode's under a
  // lock (it made the inode or changed them itself, or the server said it
  // has none); else nullopt.
  using Xattrs = std::map<std::string, std::string>;
  std::optional<Xattrs> KnownXattrs(InodeId ino) const;
  // A local setxattr or removexattr of an inode held EXCLUSIVE whose
  // attributes are known: `change` checks and edits copies.
  std::optional<Status> UpdateXattrs(InodeId ino, uint64_t seq,
                                     const std::function<Status(Attr&, Xattrs&)>& change);
  std::optional<Attr> GetAttr(InodeId ino) const;  // only while locked
  // Held EXCLUSIVE with its whole listing: changes in it can be local.
  bool OwnsDirectory(InodeId dir) const;
  // A write by `c` answered from memory: size, times and set-id bits change as
  // the server will change them (the kernel leaves the bits to us, KILLPRIV_V2).
  void NoteLocalWrite(InodeId ino, const Caller& c, uint64_t end, int64_t now_ns, uint64_t seq);
  // Written-behind data of `ino` leaves as local change `seq`: replies to
  // requests sent before it do not describe its size and times (the rest,
  // such as an unlink's link count, they do).
  void NoteLocalChange(InodeId ino, uint64_t seq);
  LockMode lock(InodeId ino) const;

  // Name lookups answered from the names known in a held directory: all of
  // them for a complete one (a name missing is kNegative), some for a large
  // one (a name missing is kUnknown).
  LookupResult Lookup(InodeId parent, const std::string& name, Attr* attr) const;
  // What the cache believes `name` in `dir` names while it holds `dir`:
  // nullopt when it does not know, an invalid id when it knows there is none.
  // For checks: unlike Lookup it leaves the LRU order alone.
  std::optional<InodeId> PeekName(InodeId dir, const std::string& name) const;
  // The whole listing, from a reply (ignored when a local create in the
  // directory is newer than the reply, or the directory's lock was given back
  // after the request left).
  void SetDirectory(InodeId dir, const std::vector<DirEntry>& entries, ReplyOrder order);
  // Some of the listing of a directory too large to come whole (a page):
  // known names, no absence. Kept while the directory is held, up to
  // kMaxPageNames names (then the older pages are dropped).
  void AddPage(InodeId dir, const std::vector<DirEntry>& entries, ReplyOrder order);
  static constexpr size_t kMaxPageNames = 65536;
  // A small file's whole content, from a leaf: kept while the file is held
  // and its size and mtime are what they were (any write changes them), up
  // to kMaxContentBytes in all.
  void PutContent(InodeId ino, std::string_view data);
  // Bytes [offset, offset + len) of the content kept for `ino`; false when
  // none is (or it went stale).
  bool ReadContent(InodeId ino, uint64_t offset, size_t len, std::string* out);
  static constexpr size_t kMaxContentBytes = 64u << 20;
  // Records the lock a reply granted on `ino`, capped at what was given back
  // after the request left. A lock regained this way (the reply carried no
  // attributes) drops the attributes kept from before: they may be stale.
  void SetLock(InodeId ino, LockMode lock, uint64_t request_id);
  void AddName(InodeId dir, const std::string& name, InodeId child);
  void RemoveName(InodeId dir, const std::string& name);
  // Forgets the listing (the names the kernel was told about stay noted:
  // a recall must still drop them); returns those names.
  std::vector<std::string> ForgetDirectory(InodeId dir);

  // Kernel reference counting (FUSE lookup count).
  void AddLookup(InodeId ino, uint64_t n = 1);
  // Returns true when the kernel's last reference went: the node is evicted
  // and its lock should be released to the server (until then the lock it
  // held is remembered: ReclaimState).
  bool Forget(InodeId ino, uint64_t n);
  // Before a release of a forgotten inode goes out: false when the kernel has
  // looked it up again meanwhile (keep the lock); else records the revocation
  // and sets `*held` to the lock the node held when it was forgotten.
  bool RevokeIfForgotten(InodeId ino, uint64_t last_request_id, LockMode* held = nullptr);

  size_t size() const;
  // What a restarted server is asked to give back (reclaim): every lock
  // held, and the inodes the kernel references that may be unlinked (not
  // known linked under a lock), so the server keeps them; `forgotten`: the
  // locks of nodes forgotten whose release has not gone out yet.
  void ReclaimState(std::vector<std::pair<InodeId, LockMode>>* locks, std::vector<InodeId>* refs,
                    std::vector<std::pair<InodeId, LockMode>>* forgotten = nullptr) const;
  bool KernelHas(InodeId ino) const;  // the kernel references it (nlookup > 0)
  // When more than `bound` inodes (never counting the root) are cached under a
  // lock: the least recently used of them, a sixteenth of the bound more than
  // the excess (so this runs once per burst), to give back. Else none.
  std::vector<InodeId> LocksOverBound(size_t bound) const;

 private:
  struct Node {
    Attr attr;
    bool has_attr = false;
    LockMode lock = LockMode::kNone;
    uint64_t local_seq = 0;  // WritebackLog sequence of the last local change
    uint64_t data_seq = 0;   // ... of the last data written or sent behind (size, times)
    uint64_t nlookup = 0;
    bool complete = false;  // `names` is the whole directory (else some of it)
    std::unordered_map<std::string, InodeId> names;
    std::unordered_set<std::string> kernel_names;  // dentries the kernel may cache
    std::optional<std::string> symlink_target;     // known for symlinks made here
    std::optional<Xattrs> xattrs;                  // all of them, when known (KnownXattrs)
    std::optional<std::string> content;            // PutContent, as of content_mtime_ns
    int64_t content_mtime_ns = 0;
    mutable uint64_t last_use = 0;  // use_clock_ when last looked at
  };
  void Touch(const Node& n) const { n.last_use = ++use_clock_; }
  void ForgetUnheldLocked(Node& n);
  void DropContentLocked(Node& n);
  size_t content_bytes_ = 0;        // guarded by mu_: sum of every node's content
  mutable uint64_t use_clock_ = 0;  // guarded by mu_
  struct Revocation {
    uint64_t request_id;
    LockMode keep;
  };
  // The lock a grant really gives: capped at what was given back after the
  // request left.
  LockMode EffectiveGrantLocked(InodeId ino, LockMode granted, uint64_t request_id) const;
  // The node, when it is cached with attributes under EXCLUSIVE (and, for
  // `complete_dir`, is a complete directory); else null.
  Node* OwnedLocked(InodeId ino, bool complete_dir = false);
  static std::optional<Xattrs> KnownXattrsOf(const Node& n);
  mutable std::mutex mu_;
  std::unordered_map<InodeId, Node> nodes_;
  std::unordered_map<InodeId, LockMode> forgotten_locks_;  // Forget to RevokeIfForgotten
  std::unordered_map<InodeId, std::vector<Revocation>> revoked_;
  void AddRevocationLocked(InodeId ino, Revocation r);
};

}  // namespace cohfs
