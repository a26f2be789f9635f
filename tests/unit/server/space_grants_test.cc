// Space grants: the accounting alone, then through the real dispatcher: a
// client's grant is space no other client (nor its own write-through) can
// take, its granted writes always find room, statfs leaves others' grants
// out, and the grant goes back with the session.
#include "server/space_grants.h"

#include <linux/falloc.h>

#include "tests/unit/server/commit_fixture.h"

namespace cohfs::test {
namespace {

constexpr uint64_t kMiB = 1ull << 20;

TEST(SpaceGrants, GrantsAtMostHalfOfWhatNobodyHoldsAndTakesWritesOut) {
  SpaceGrants g(64 * kMiB);
  const ClientId a(1), b(2);
  // Capped by the client's wish, then by the server's maximum.
  EXPECT_EQ(g.TopUp(a, 8 * kMiB, 100 * kMiB), 8 * kMiB);
  EXPECT_EQ(g.TopUp(a, 8 * kMiB, 100 * kMiB), 0u);  // holds what it wants
  EXPECT_EQ(g.TopUp(b, 1024 * kMiB, 1000 * kMiB), 64 * kMiB);
  EXPECT_EQ(g.total(), 72 * kMiB);
  // A granted write takes its charge out; the reply tops it up again.
  EXPECT_EQ(g.Consume(a, 8 * kMiB), 8 * kMiB);
  EXPECT_EQ(g.TopUp(a, 8 * kMiB, 80 * kMiB), 8 * kMiB);
  // Nearly full (8 MiB nobody holds): half of it, then half of the rest.
  EXPECT_EQ(g.Consume(a, 8 * kMiB), 8 * kMiB);
  EXPECT_EQ(g.TopUp(a, 8 * kMiB, 72 * kMiB), 4 * kMiB);
  EXPECT_EQ(g.TopUp(a, 8 * kMiB, 72 * kMiB), 2 * kMiB);
  // Never from space that is not there (free below what is granted).
  EXPECT_EQ(g.TopUp(a, 8 * kMiB, 10 * kMiB), 0u);
  EXPECT_EQ(g.TopUp(a, 8 * kMiB, g.total() + kBlockBytes), 0u);  // half a block: nothing
  // A claim beyond the grant takes only what was there.
  EXPECT_EQ(g.Consume(a, 100 * kMiB), 6 * kMiB);
  EXPECT_EQ(g.of(a), 0u);
  EXPECT_EQ(g.ReservedAgainst(a, 0), 64 * kMiB);
  EXPECT_EQ(g.ReservedAgainst(b, 4 * kMiB), 60 * kMiB);
  g.Drop(b);
  EXPECT_EQ(g.total(), 0u);
}

class SpaceGrantTest : public CommitTest {
 protected:
  SpaceGrantTest() {
    Open(&other_);
  }
  std::unique_ptr<DecodedReply> As(Session& s, capnp::MallocMessageBuilder& m,
                                   std::string bulk = {}) {
    auto request =
        Decode<DecodedRequest>(EncodeFrame(FrameKind::kRequest, RequestId(1), m, std::move(bulk)));
    auto out = dispatcher_.Handle(s, *request, 0);
    return Decode<DecodedReply>(std::move(out.reply));
  }
  std::unique_ptr<DecodedReply> Write(Session& s, InodeId ino, uint64_t offset, size_t bytes,
                                      uint64_t grant_bytes, uint64_t want) {
    capnp::MallocMessageBuilder m;
    auto r = m.initRoot<wire::Request>();
    ToWire(kRoot, r.initCaller());
    auto w = r.initWrite();
    w.setIno(ino.value);
    w.setOffset(offset);
    w.setGrantBytes(grant_bytes);
    w.setWantGrant(want);
    return As(s, m, std::string(bytes, 'w'));
  }
  int Fallocate(Session& s, InodeId ino, uint64_t offset, uint64_t length) {
    capnp::MallocMessageBuilder m;
    auto r = m.initRoot<wire::Request>();
    ToWire(kRoot, r.initCaller());
    auto f = r.initFallocate();
    f.setIno(ino.value);
    f.setMode(FALLOC_FL_KEEP_SIZE);
    f.setOffset(offset);
    f.setLength(length);
    return As(s, m)->root().getErrno();
  }
  uint64_t FreeSeenBy(Session& s) {
    capnp::MallocMessageBuilder m;
    auto r = m.initRoot<wire::Request>();
    ToWire(kRoot, r.initCaller());
    r.setStatFs();
    auto reply = As(s, m);
    EXPECT_TRUE(reply->root().isFsStat());
    return reply->root().getFsStat().getFreeBlocks() * kBlockBytes;
  }
  Session other_;
};

TEST_F(SpaceGrantTest, AGrantIsSpaceOnlyItsClientsGrantedWritesCanTake) {
  InodeId f = CreateOwned("f");
  // A write through asks for a grant and gets at most half the free space.
  auto r = Write(session_, f, 0, 2 * kBlockBytes, 0, 1ull << 40);
  ASSERT_EQ(r->root().getErrno(), 0) << r->root().getMessage().cStr();
  const uint64_t granted = r->root().getGrantAdded();
  EXPECT_GT(granted, 0u);
  EXPECT_EQ(granted % kBlockBytes, 0u);
  EXPECT_LE(granted, fs_->free_bytes() / 2 + kBlockBytes);
  EXPECT_EQ(dispatcher_.space_grants().of(session_.client), granted);
  // statfs: the holder sees all free space, the other client all but the grant.
  EXPECT_EQ(FreeSeenBy(session_), fs_->free_bytes());
  EXPECT_EQ(FreeSeenBy(other_), fs_->free_bytes() - granted);
  // The other client can take everything but the grant, not a block more.
  const uint64_t unreserved = fs_->free_bytes() - granted;
  EXPECT_EQ(Fallocate(other_, f, 1ull << 30, unreserved + kBlockBytes), ENOSPC);
  EXPECT_EQ(Fallocate(other_, f, 1ull << 30, unreserved), 0);
  EXPECT_EQ(Write(other_, f, 0, kBlockBytes, 0, 0)->root().getErrno(), ENOSPC);
  // The holder's own write-through may not use it either (its written-behind
  // data may need all of it).
  EXPECT_EQ(Write(session_, f, 0, kBlockBytes, 0, 0)->root().getErrno(), ENOSPC);
  // Its granted writes always find room, and take their charge out.
  const uint64_t charge = 3 * kBlockBytes;
  auto g = Write(session_, f, 2 * kBlockBytes, 2 * kBlockBytes, charge, 1ull << 40);
  ASSERT_EQ(g->root().getErrno(), 0) << g->root().getMessage().cStr();
  EXPECT_EQ(g->root().getGrantAdded(), 0u);  // nothing left to grant
  EXPECT_EQ(dispatcher_.space_grants().of(session_.client), granted - charge);
  EXPECT_GE(fs_->free_bytes(), dispatcher_.space_grants().total());
  // The session's end gives the grant back.
  dispatcher_.EndSession(session_);
  EXPECT_EQ(dispatcher_.space_grants().total(), 0u);
  EXPECT_EQ(Write(other_, f, 0, kBlockBytes, 0, 0)->root().getErrno(), 0);
}

TEST_F(SpaceGrantTest, TheWelcomeBringsTheFirstGrant) {
  Session fresh;
  const uint64_t free = fs_->free_bytes();
  auto reply = Open(&fresh, 8 * kMiB);
  ASSERT_TRUE(reply->root().isWelcome());
  EXPECT_EQ(reply->root().getWelcome().getGrantBytes(), std::min(8 * kMiB, free / 2));
  EXPECT_EQ(dispatcher_.space_grants().of(fresh.client), std::min(8 * kMiB, free / 2));
  dispatcher_.EndSession(fresh);
  EXPECT_EQ(dispatcher_.space_grants().total(), 0u);
}

}  // namespace
}  // namespace cohfs::test
