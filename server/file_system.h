// FileSystem: POSIX semantics over storage items, one method per operation.
//
// Each mutating method runs in one Txn and commits it (not synced: in the WAL)
// or, while a Group is open, writes into the group's Txn (see Group).
// Sync() makes every earlier commit durable (device flush + WAL fsync, the group
// commit) and then lets freed space be reused. Errors are errno values, exactly
// those Linux returns for the same call on ext4.
// Permission checks are done here too (the kernel's default_permissions is only
// the first line): the caller's uid/gid/groups against mode bits, sticky dirs,
// owner-only chmod/utimes, root-only chown to another uid, setgid clearing.
// Timestamps change as Linux changes them; atime is relatime.
// Thread: the server's storage executor only (not thread-safe).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/fs_types.h"
#include "common/status.h"
#include "storage/volume.h"

namespace cohfs {

struct InodeRange {
  uint64_t first = 0;  // inclusive
  uint64_t count = 0;
};

class FileSystem {
 public:
  explicit FileSystem(Volume& volume);

  // --- reads
  // `*seq` (when given): the entry's place in the directory (a ReadDir
  // cookie one below it resumes at the entry); 0 for "." and "..".
  Result<Attr> Lookup(const Caller& c, InodeId parent, std::string_view name,
                      uint64_t* seq = nullptr);
  Result<Attr> GetAttr(InodeId ino);
  Result<std::string> ReadLink(InodeId ino);
  // Entries with cookie > `cookie` (0 = from the start; "." and ".." are the
  // client's, cookies 1 and 2), in stable order, at most max_entries.
  Result<std::vector<DirEntry>> ReadDir(const Caller& c, InodeId dir, uint64_t cookie,
                                        size_t max_entries);
  // Short at end of file; holes read as zeros. Checks DataPermission (common/permissions.h).
  // `note_atime` false: content sent ahead (a leaf), not read by anyone yet.
  Result<std::string> Read(const Caller& c, InodeId ino, uint64_t offset, uint32_t len,
                           bool note_atime = true);
  // SEEK_DATA / SEEK_HOLE (whence as in <unistd.h>); ENXIO at or past the end.
  // Unwritten (fallocated) extents count as holes, as on ext4.
  Result<uint64_t> Lseek(InodeId ino, uint64_t offset, int whence);
  Result<std::string> GetXattr(const Caller& c, InodeId ino, std::string_view name);
  Result<std::vector<std::string>> ListXattr(const Caller& c, InodeId ino);
  // free_blocks: all free space, granted or not (the Dispatcher subtracts grants).
  Result<FsStat> StatFs();
  // Checks open(2) access for `flags` (O_ACCMODE, O_TRUNC) on an existing inode,
  // and truncates a regular file opened with O_TRUNC (FUSE atomic_o_trunc).
  Status Open(const Caller& c, InodeId ino, int flags);
  Status Access(const Caller& c, InodeId ino, int mask);
  // Whether `c` could name `ino` by a path (server/reach.cc): search permission
  // on every directory from the root down to a directory naming it. A removed
  // inode (nlink 0) has no path: only `held` (its client has it open or
  // locked) reaches it. EACCES, or ENOENT.
  Status Reach(const Caller& c, InodeId ino, bool held);

  // --- namespace changes; new inodes take the number the client allocated
  // from its range (EEXIST if that number is in use). `now_ns` (here and in
  // every change below): the time a client made the change locally, used for
  // every time the change sets (the directories' mtime and ctime, the child's
  // ctime, a new node's times); 0: the server's clock.
  Result<Attr> Mknod(const Caller& c, InodeId parent, std::string_view name, uint32_t mode,
                     uint64_t rdev, InodeId new_ino, int64_t now_ns = 0);
  Result<Attr> Mkdir(const Caller& c, InodeId parent, std::string_view name, uint32_t mode,
                     InodeId new_ino, int64_t now_ns = 0);
  Result<Attr> Symlink(const Caller& c, InodeId parent, std::string_view name,
                       std::string_view target, InodeId new_ino, int64_t now_ns = 0);
  Result<Attr> Link(const Caller& c, InodeId ino, InodeId new_parent, std::string_view new_name,
                    int64_t now_ns = 0);
  // Unlinking the last name of an inode leaves it an orphan (ORPHAN item) until
  // Reclaim; returns the child's inode so the caller can drop it when unused.
  Result<InodeId> Unlink(const Caller& c, InodeId parent, std::string_view name,
                         int64_t now_ns = 0);
  Result<InodeId> Rmdir(const Caller& c, InodeId parent, std::string_view name, int64_t now_ns = 0);
  // flags: kRenameNoReplace, kRenameExchange, kRenameWhiteout (root only: a
  // 0/0 character device takes the source name, as overlayfs wants; its inode
  // number comes from SUPER, in the same transaction). Returns the replaced
  // inode, if any.
  Result<std::optional<InodeId>> Rename(const Caller& c, InodeId parent, std::string_view name,
                                        InodeId new_parent, std::string_view new_name,
                                        uint32_t flags, int64_t now_ns = 0);

  // --- inode changes
  Result<Attr> SetAttr(const Caller& c, InodeId ino, const SetAttrRequest& req);
  // FS_IOC_SETFLAGS (server/file_flags.cc): the chattr flags of
  // common/inode_flags.h; others EOPNOTSUPP. Owner or root; IMMUTABLE and
  // APPEND root only (EPERM). Sets the ctime.
  Result<Attr> SetFlags(const Caller& c, InodeId ino, uint32_t fs_flags);
  // Copy-on-write: data goes to new extents (or the INLINE item while the file
  // stays <= kInlineMaxBytes). Clears setuid/setgid as Linux does.
  // `mtime_ns`: the mtime to store (0: now); ctime becomes it if that is later.
  Result<Attr> Write(const Caller& c, InodeId ino, uint64_t offset, std::span<const char> data,
                     int64_t mtime_ns = 0);
  // mode: 0, FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE|KEEP_SIZE, FALLOC_FL_ZERO_RANGE
  // (optionally |KEEP_SIZE), FALLOC_FL_COLLAPSE_RANGE, FALLOC_FL_INSERT_RANGE
  // (alone, whole blocks; server/file_shift.cc); others EOPNOTSUPP. ENOSPC
  // leaves nothing changed. EPERM on IMMUTABLE, and on APPEND for all but 0 and KEEP_SIZE.
  Result<Attr> Fallocate(const Caller& c, InodeId ino, int mode, uint64_t offset, uint64_t length);
  // flags: XATTR_CREATE / XATTR_REPLACE. `now_ns` sets the ctime (0: now).
  Status SetXattr(const Caller& c, InodeId ino, std::string_view name, std::string_view value,
                  int flags, int64_t now_ns = 0);
  Status RemoveXattr(const Caller& c, InodeId ino, std::string_view name, int64_t now_ns = 0);

  // --- groups (DESIGN §3: dependent changes are one WriteBatch, applied
  // entirely or not at all). While a Group is open, every method above runs in
  // the group's one transaction: a change sees the group's earlier ones, and
  // none reaches the store before Commit. A method that fails after writing
  // part of its change breaks the group (Commit then refuses with EIO).
  // Destroyed without a successful Commit, the group is dropped whole: the
  // transaction's abort hooks give back any space it allocated or freed.
  // One group at a time. ReadDir reads the store itself and does not see an
  // open group's changes.
  class Group {
   public:
    explicit Group(FileSystem& fs);
    ~Group();
    Group(const Group&) = delete;
    Group& operator=(const Group&) = delete;
    // Applies every change of the group (not synced: in the WAL), or none.
    Status Commit();

   private:
    FileSystem& fs_;
    std::unique_ptr<Txn> txn_;
  };

  // --- lifecycle
  // Deletes an orphan (nlink 0) inode with all its items and space, once no
  // client references it. No-op for a linked inode; ENOENT if it is gone.
  Status Reclaim(InodeId ino);
  // At server start, nothing references orphans any more: reclaims them all.
  Status ReclaimAllOrphans();
  Status Orphans(std::vector<InodeId>* out);  // every inode with an ORPHAN item
  // Hands out `count` never-used inode numbers (persisted in SUPER).
  Result<InodeRange> AllocateInodes(uint64_t count);
  Status Sync();
  // Device space: free (allocatable or waiting for a sync), and the part of it
  // allocations must leave alone (other clients' space grants; set before
  // each request).
  uint64_t free_bytes() const { return volume_.allocator().free_bytes(); }
  void set_reserved_bytes(uint64_t bytes) { volume_.allocator().set_reserved_bytes(bytes); }
  // Runs on every transaction just before it goes to the store, so what it
  // adds is in the same WriteBatch (the replay record, server/session_store.h).
  void set_commit_hook(std::function<void(Txn&)> hook) { commit_hook_ = std::move(hook); }
  ItemStore& items() { return volume_.items(); }

 private:
  class Tx;  // server/fs_tx.h
  // EIO once the metadata store has gone read-only (a failed commit or sync).
  Status CheckWritable();
  // Search permission on `dir` and on every directory above it.
  Status Searchable(Tx& tx, const Caller& c, InodeId dir);
  Result<InodeId> RemoveEntry(const Caller& c, InodeId parent, std::string_view name, bool dir,
                              int64_t now_ns);
  Result<Attr> CreateNode(const Caller& c, InodeId parent, std::string_view name, uint32_t mode,
                          uint64_t rdev, InodeId new_ino, std::string_view symlink_target,
                          int64_t now_ns);
  // --- data path (server/file_data.cc), all inside the caller's transaction.
  // Copy-on-write of [offset, offset + data.size()); grows the size if needed.
  Status WriteRange(Tx& tx, InodeId ino, InodeItem& inode, uint64_t offset,
                    std::span<const char> data);
  // Reads [offset, offset + out.size()) ignoring the size: holes are zeros.
  Status ReadRange(Tx& tx, InodeId ino, const InodeItem& inode, uint64_t offset,
                   std::span<char> out);
  // Drops the extents over the block-aligned [start, end), freeing their space.
  Status PunchRange(Tx& tx, InodeId ino, InodeItem& inode, uint64_t start, uint64_t end);
  // Makes [start, end) read as zeros: partial blocks by copy-on-write, whole blocks punched.
  Status ZeroRange(Tx& tx, InodeId ino, InodeItem& inode, uint64_t start, uint64_t end);
  // Unwritten extents over the holes of the blocks covering [start, end).
  Status Preallocate(Tx& tx, InodeId ino, InodeItem& inode, uint64_t start, uint64_t end);
  Status ConvertInline(Tx& tx, InodeId ino, InodeItem& inode);
  // --- chattr flags and whiteouts (server/file_flags.cc)
  // may_delete / may_create of a rename under IMMUTABLE and APPEND (EPERM).
  static Status CheckRenameFlags(const InodeItem& from_dir, const InodeItem& moved,
                                 const InodeItem& to_dir, const InodeItem* victim);
  // A new 0/0 character device named `name` in `dir` (RENAME_WHITEOUT).
  Status AddWhiteout(Tx& tx, const Caller& c, InodeId dir, InodeItem& dir_item,
                     std::string_view name, int64_t now);
  // FALLOC_FL_COLLAPSE_RANGE / FALLOC_FL_INSERT_RANGE: shifts the extents
  // past `offset` (block aligned, checked by Fallocate) down or up by `length`.
  Status CollapseRange(Tx& tx, InodeId ino, InodeItem& inode, uint64_t offset, uint64_t length);
  Status InsertRange(Tx& tx, InodeId ino, InodeItem& inode, uint64_t offset, uint64_t length);
  Result<Attr> ShiftRange(const Caller& c, InodeId ino, int mode, uint64_t offset,
                          uint64_t length);
  Status Truncate(Tx& tx, InodeId ino, InodeItem& inode, uint64_t size);
  // Allocates and writes new extents (at most kMaxExtentBytes each). On ENOSPC,
  // when space freed by earlier commits is waiting for durability, syncs once and
  // retries (only if this transaction has freed nothing itself).
  Result<std::vector<ExtentItem>> WriteExtents(Tx& tx, std::span<const char> data);

  Volume& volume_;
  std::function<void(Txn&)> commit_hook_;
  // The open Group, if any (owned by it): what every Tx joins.
  struct OpenGroup {
    Txn* txn = nullptr;
    bool freed_space = false;  // its frees wait for its commit: no early ReleasePending
    bool broken = false;       // a change failed half-written
  };
  OpenGroup group_;
};

}  // namespace cohfs
