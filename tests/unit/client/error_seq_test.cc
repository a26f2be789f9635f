// ErrorSeq: a deferred failure reaches every open file's next fsync once, and
// the next write or close once (Linux errseq semantics).
#include "client/error_seq.h"

#include <gtest/gtest.h>

namespace cohfs {
namespace {

TEST(ErrorSeq, EveryOpenFileSeesAFailureOnceAtFsync) {
  ErrorSeq e;
  const InodeId ino(7);
  uint64_t a = e.Open(ino), b = e.Open(ino);
  EXPECT_NE(a, b);
  EXPECT_TRUE(e.TakeForFsync(a, ino).ok());
  e.Record(ino, Status::Error(ENOSPC));
  EXPECT_EQ(e.TakeForFsync(a, ino).errno_value(), ENOSPC);
  EXPECT_TRUE(e.TakeForFsync(a, ino).ok());
  EXPECT_EQ(e.TakeForFsync(b, ino).errno_value(), ENOSPC);
  EXPECT_TRUE(e.TakeForFsync(b, ino).ok());
  // close reports it once too, independently of the fsyncs.
  EXPECT_EQ(e.TakeForClose(ino).errno_value(), ENOSPC);
  EXPECT_TRUE(e.TakeForClose(ino).ok());
  // A later failure is news to both again; the newest errno wins.
  e.Record(ino, Status::Error(EIO));
  e.Record(ino, Status::Error(EDQUOT));
  EXPECT_EQ(e.TakeForFsync(b, ino).errno_value(), EDQUOT);
  EXPECT_EQ(e.TakeForFsync(a, ino).errno_value(), EDQUOT);
  // Other inodes are not affected.
  uint64_t c = e.Open(InodeId(8));
  EXPECT_TRUE(e.TakeForFsync(c, InodeId(8)).ok());
}

TEST(ErrorSeq, AFileOpenedLaterSeesOnlyWhatNobodyReported) {
  ErrorSeq e;
  const InodeId ino(7);
  uint64_t a = e.Open(ino);
  e.Record(ino, Status::Error(ENOSPC));
  e.Close(a);  // closed before anybody looked (the reply came after close)
  uint64_t b = e.Open(ino);
  EXPECT_EQ(e.TakeForFsync(b, ino).errno_value(), ENOSPC);
  uint64_t c = e.Open(ino);  // opened after b reported it
  EXPECT_TRUE(e.TakeForFsync(c, ino).ok());
  e.Close(b);
  e.Close(c);
  // Reported and nothing open: forgotten.
  EXPECT_EQ(e.records(), 0u);
  EXPECT_EQ(e.open_files(), 0u);
}

TEST(ErrorSeq, AnUnknownFileReportsWhatCloseHasNot) {
  ErrorSeq e;
  const InodeId ino(3);
  e.Record(ino, Status::Error(EACCES));
  EXPECT_EQ(e.TakeForFsync(0, ino).errno_value(), EACCES);
  EXPECT_TRUE(e.TakeForFsync(0, ino).ok());
  EXPECT_TRUE(e.TakeForClose(ino).ok());
  EXPECT_EQ(e.records(), 0u);
}

}  // namespace
}  // namespace cohfs
