# cohfs wire protocol, version 6 (docs/wire-protocol.md).
# Every frame: a fixed 24-byte header (frame.h), one Request or Reply message,
# then an optional bulk payload (file data for Write requests and Read replies).
@0x833f476b7730c616;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("cohfs::wire");

# 2: recalls, downgrade, file locks, append; 3: the whole namespace in a commit
# (nowNs on every change, withNext groups); 4: space grants (hello.wantGrant,
# Welcome.grantBytes, write.grantBytes, write.wantGrant, Reply.grantAdded); 5: sessions
# that outlive connections and server restarts (hello.resume*, Request.repliedBelow,
# reclaim, Welcome.sessionKey/resumed/reclaim); 6: reclaim.givingBack/fileLocks,
# write.mtimeNs, returnGrant; 7: serverStatus (instead of a hello, opens no session),
# setFlags, rename flag 4 (RENAME_WHITEOUT), fallocate COLLAPSE/INSERT_RANGE
const protocolVersion :UInt32 = 7;

enum LockMode {
  none @0;
  shared @1;
  exclusive @2;
}

struct Grant {
  ino @0 :UInt64;
  mode @1 :LockMode;
}

struct Caller {
  uid @0 :UInt32;
  gid @1 :UInt32;
  groups @2 :List(UInt32);
  pid @3 :UInt32;
}

struct Attr {
  ino @0 :UInt64;
  generation @1 :UInt64;
  mode @2 :UInt32;
  nlink @3 :UInt32;
  uid @4 :UInt32;
  gid @5 :UInt32;
  rdev @6 :UInt64;
  size @7 :UInt64;
  blocks @8 :UInt64;
  atimeNs @9 :Int64;
  mtimeNs @10 :Int64;
  ctimeNs @11 :Int64;
  flags @12 :UInt32;         # kInodeHasXattrs = 1, and the chattr FS_*_FL bits kept
}

struct Entry {
  name @0 :Data;
  cookie @1 :UInt64;
  attr @2 :Attr;
  inlineData @3 :Data;  # in a lookup's leaf: a small regular file's whole content (v7)
}

struct InodeRange {
  first @0 :UInt64;
  count @1 :UInt64;
}

struct Request {
  caller @0 :Caller;
  withNext @96 :Bool;  # in a commit: this change and the next are one group, applied in one
                       # WriteBatch, entirely or not at all
  repliedBelow @101 :UInt64;  # the client has the replies to all its requests below this id
                              # (the server may forget what it kept to repeat them)
  union {
    hello :group {
      versionMin @1 :UInt32;
      versionMax @2 :UInt32;
      clientName @3 :Text;
      wantGrant @100 :UInt64;  # the space grant the client would like (Welcome.grantBytes)
      resumeSession @102 :UInt64;  # a session this client had (0: a new one) ...
      resumeKey @103 :UInt64;      # ... and the key the server gave it with it
    }
    lookup :group {
      parent @4 :UInt64;
      name @5 :Data;
      wantLeaf @6 :Bool;     # attach the directory's entries when it is small
    }
    getAttr @7 :UInt64;      # ino
    setAttr :group {
      ino @8 :UInt64;
      mask @9 :UInt32;       # SetAttrMask bits (common/fs_types.h)
      mode @10 :UInt32;
      uid @11 :UInt32;
      gid @12 :UInt32;
      size @13 :UInt64;
      atimeNs @14 :Int64;
      mtimeNs @15 :Int64;
      ctimeNs @16 :Int64;
      hasOpenHandle @17 :Bool;
      nowNs @80 :Int64;      # the client's clock for *Now bits and ctime (0: the server's)
    }
    readLink @18 :UInt64;
    mknod :group {
      parent @19 :UInt64;
      name @20 :Data;
      mode @21 :UInt32;
      rdev @22 :UInt64;
      newIno @23 :UInt64;    # from the client's inode range
      nowNs @81 :Int64;      # in a commit: when the client made it (0: the server's clock)
    }
    mkdir :group {
      parent @24 :UInt64;
      name @25 :Data;
      mode @26 :UInt32;
      newIno @27 :UInt64;
      nowNs @88 :Int64;  # in a commit: when the client made the change (0: the server's clock)
    }
    symlink :group {
      parent @28 :UInt64;
      name @29 :Data;
      target @30 :Data;
      newIno @31 :UInt64;
      nowNs @89 :Int64;  # in a commit: when the client made the change (0: the server's clock)
    }
    link :group {
      ino @32 :UInt64;
      newParent @33 :UInt64;
      newName @34 :Data;
      nowNs @90 :Int64;  # in a commit: when the client made the change (0: the server's clock)
    }
    unlink :group {
      parent @35 :UInt64;
      name @36 :Data;
      nowNs @91 :Int64;  # in a commit: when the client made the change (0: the server's clock)
    }
    rmdir :group {
      parent @37 :UInt64;
      name @38 :Data;
      nowNs @92 :Int64;  # in a commit: when the client made the change (0: the server's clock)
    }
    rename :group {
      parent @39 :UInt64;
      name @40 :Data;
      newParent @41 :UInt64;
      newName @42 :Data;
      flags @43 :UInt32;
      nowNs @93 :Int64;  # in a commit: when the client made the change (0: the server's clock)
    }
    open :group {
      ino @44 :UInt64;
      flags @45 :Int32;
    }
    read :group {
      ino @46 :UInt64;
      offset @47 :UInt64;
      length @48 :UInt32;
    }
    write :group {           # data in the bulk payload
      ino @49 :UInt64;
      offset @50 :UInt64;
      append @83 :Bool;      # O_APPEND: write at the end of the file (offset ignored)
      grantBytes @98 :UInt64;  # of the client's space grant this write uses (0: none, a
                               # write-through); taken from the grant whatever the outcome
      wantGrant @99 :UInt64;   # the grant the client would like to hold (topped up in the reply)
      mtimeNs @109 :Int64;     # written behind: the mtime the client's cache shows (0: the
                               # server's clock); ctime becomes it only if that is later
    }
    fsync @51 :UInt64;       # ino; replies once everything is durable
    readDir :group {
      ino @52 :UInt64;
      cookie @53 :UInt64;
      maxEntries @54 :UInt32;
    }
    statFs @55 :Void;
    setXattr :group {
      ino @56 :UInt64;
      name @57 :Data;
      value @58 :Data;
      flags @59 :Int32;
      nowNs @94 :Int64;  # in a commit: when the client made the change (0: the server's clock)
    }
    getXattr :group {
      ino @60 :UInt64;
      name @61 :Data;
    }
    listXattr @62 :UInt64;
    removeXattr :group {
      ino @63 :UInt64;
      name @64 :Data;
      nowNs @95 :Int64;  # in a commit: when the client made the change (0: the server's clock)
    }
    fallocate :group {
      ino @65 :UInt64;
      mode @66 :Int32;
      offset @67 :UInt64;
      length @68 :UInt64;
    }
    lseek :group {
      ino @69 :UInt64;
      offset @70 :UInt64;
      whence @71 :Int32;
    }
    access :group {
      ino @72 :UInt64;
      mask @73 :Int32;
    }
    release @74 :List(UInt64);   # the client drops its locks on these inodes
    allocInodes @75 :UInt64;     # count wanted
    renew @76 :Void;
    syncFs @77 :Void;
    goodbye @78 :Void;
    returnGrant @110 :UInt64;  # gives back this many bytes of the client's space grant
                               # (unused for a lease); taken out as a granted write's are
    commit @79 :List(Request);   # changes the client already made locally (its
                                 # writeback log), applied in order; each entry
                                 # carries its own caller; setAttr, mknod, mkdir,
                                 # symlink, link, unlink, rmdir, rename, setXattr,
                                 # removeXattr; `withNext` chains form groups
    downgrade @82 :List(UInt64); # answers a recall to SHARED: the client keeps
                                 # SHARED on these inodes (and has flushed them)
    setLock :group {         # fcntl/OFD record locks and flock(2), arbitrated here
      lock @84 :FileLock;
      wait @85 :Bool;        # F_SETLKW / blocking flock: answered once granted
    }
    getLock @86 :FileLock;   # F_GETLK: the reply's `lock` conflicts (type unlock: none)
    unlock @87 :List(UInt64);    # answers a recall to NONE for inodes the kernel still
                                 # references (open, cached): the lock goes, the reference
                                 # stays (an unlinked open file lives on) until `release`
    acquire @97 :UInt64;     # a directory: EXCLUSIVE on it, its whole listing (reply: attr,
                             # leaf, grants: EXCLUSIVE on every child nobody else holds)
    reclaim :group {         # after a server restart (Welcome.reclaim), before anything else:
      locks @104 :List(Grant);   # the locks the client held (reply: grants, those given back)
      refs @105 :List(UInt64);   # inodes its kernel still references (open unlinked files)
      grantBytes @106 :UInt64;   # the space grant its written-behind data still uses
      givingBack @107 :List(Grant);  # locks given back in requests not answered yet (the
                                     # server may have taken them): granted at the grace
                                     # period's end if nobody reclaimed them; until then
                                     # its requests wait
      fileLocks @108 :List(FileLock);  # the record and flock locks its processes hold
    }
    serverStatus :group {    # version 7, instead of a hello (`cohfs status`): the reply is
      versionMin @111 :UInt32;   # a ServerStatus; the connection opens no session and
      versionMax @112 :UInt32;   # takes nothing after it
    }
    setFlags :group {        # version 7: FS_IOC_SETFLAGS (chattr); reply: attr (flags in it)
      ino @113 :UInt64;
      flags @114 :UInt32;    # FS_*_FL bits of common/inode_flags.h
    }
  }
}

# What `cohfs status` shows: a snapshot the executor takes between requests.
struct ServerStatus {
  leaseMs @0 :UInt32;
  grace @1 :Bool;              # after a restart: clients are reclaiming their locks
  graceLeftMs @2 :Int64;
  freeBytes @3 :UInt64;
  grantedBytes @4 :UInt64;     # reserved for clients' write-behind (space grants)
  lockedInodes @5 :UInt64;
  recallsInFlight @6 :UInt64;  # sent, not answered yet
  parkedRequests @7 :UInt64;   # waiting for other clients' locks
  sessions @8 :List(SessionStatus);
}

struct SessionStatus {
  id @0 :UInt64;
  clientName @1 :Text;
  peer @2 :Text;               # "host:port" of its connection ("": detached)
  leaseLeftMs @3 :Int64;       # attached: a lease less the time since its last request;
                               # detached: until it ends unless the client comes back
  locksHeld @4 :UInt64;
  recallsInFlight @5 :UInt64;
  grantBytes @6 :UInt64;
  reclaiming @7 :Bool;         # stored before a restart, not back yet
}

struct FileLock {
  ino @0 :UInt64;
  owner @1 :UInt64;          # the kernel's lock owner (process, or open file)
  start @2 :UInt64;
  end @3 :UInt64;            # inclusive; 2^64-1: to the end of the file
  type @4 :UInt8;            # 0 read, 1 write, 2 unlock
  flock @5 :Bool;            # a flock(2) lock (separate from record locks)
  pid @6 :UInt32;
}

# Server -> client (frame kind 3): give up `ino` down to `mode` (shared:
# downgrade, none: release). The client flushes its writeback log and the
# inode's written-behind data, drops the kernel's caches of it, then answers
# with a `release` or `downgrade` request.
struct Recall {
  ino @0 :UInt64;
  mode @1 :LockMode;
}

struct Welcome {
  version @0 :UInt32;
  sessionId @1 :UInt64;
  leaseMs @2 :UInt32;
  rootIno @3 :UInt64;
  inodes @4 :InodeRange;
  serverGeneration @5 :UInt64;
  grantBytes @6 :UInt64;     # the client's first space grant (docs/wire-protocol.md)
  sessionKey @7 :UInt64;     # with sessionId, what a reconnecting client resumes with
  resumed @8 :Bool;          # hello.resumeSession is this session: its locks and state live on
  reclaim @9 :Bool;          # ... but the server restarted: send `reclaim` before anything else
  squash @10 :UInt8;         # the server's identity squashing (1 root, 2 all), which the
                             # client applies to its own checks too (common/squash.h)
}

struct FsStat {
  blockBytes @0 :UInt64;
  totalBlocks @1 :UInt64;
  freeBlocks @2 :UInt64;
  totalInodes @3 :UInt64;
  freeInodes @4 :UInt64;
  maxNameBytes @5 :UInt32;
}

# One change of a commit that the server refused.
struct OpFailure {
  index @0 :UInt32;          # position in the commit
  ino @1 :UInt64;
  errno @2 :Int32;
  message @3 :Text;
}

struct Reply {
  errno @0 :Int32;           # 0 = success; otherwise the union is `none`
  message @1 :Text;
  grants @2 :List(Grant);    # locks that make the reply's objects cacheable
  leaf @3 :List(Entry);      # neighbouring items: a small directory's entries
  leafComplete @4 :Bool;     # `leaf` is the whole directory
  union {
    none @5 :Void;
    welcome @6 :Welcome;
    attr @7 :Attr;
    target @8 :Data;         # readlink
    entries @9 :List(Entry); # readdir
    data @10 :Void;          # read: bytes in the bulk payload
    value @11 :Data;         # getxattr
    names @12 :List(Data);   # listxattr
    fsStat @13 :FsStat;
    offset @14 :UInt64;      # lseek
    inodes @15 :InodeRange;  # allocInodes
    removed @16 :UInt64;     # unlink/rmdir/rename: the inode that lost a name (0: none)
    failures @18 :List(OpFailure);  # commit: the changes refused (other groups applied)
    lock @19 :FileLock;      # getLock
    serverStatus @21 :ServerStatus;
  }
  changed @17 :List(Attr);   # other inodes the request changed (parents, unlinked children)
  grantAdded @20 :UInt64;    # write: bytes added to the client's space grant (never more
                             # than the server has free and not granted)
}
