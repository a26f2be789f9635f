// At-most-once replay (docs/failure.md): a resent change is answered from
// its REPLAY item, never applied again, also when the server died after the
// change and before its complete reply was stored.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include "server/session_store.h"
#include "tests/unit/server/commit_fixture.h"

namespace cohfs::test {
namespace {

class ReplayTest : public CommitTest {
 protected:
  std::unique_ptr<DecodedRequest> Request(capnp::MallocMessageBuilder& m, RequestId id) {
    return Decode<DecodedRequest>(EncodeFrame(FrameKind::kRequest, id, m));
  }
  // What a crash between the change's write batch and its reply's leaves:
  // the REPLAY item in its first form.
  void ForgetCompleteReply(RequestId id) {
    SessionStore store(fs_->items());
    ReplayItem first;
    ASSERT_TRUE(store.Record(session_.client.value, id.value, first, &session_.replays, 0).ok());
  }
  // Handles `m` as request `id`; true when it succeeded.
  bool Apply(capnp::MallocMessageBuilder& m, RequestId id) {
    auto request = Request(m, id);
    return Decode<DecodedReply>(dispatcher_.Handle(session_, *request, 0).reply)
               ->root()
               .getErrno() == 0;
  }
  // `m` resent as request `id`: the reply it gets without running again
  // (null: it would run again).
  std::unique_ptr<DecodedReply> Resend(capnp::MallocMessageBuilder& m, RequestId id) {
    auto again = Request(m, id);
    auto replayed = dispatcher_.Replay(session_, *again);
    return replayed ? Decode<DecodedReply>(*replayed) : nullptr;
  }
  static void SetTruncate(capnp::MallocMessageBuilder& m, InodeId ino, uint64_t size) {
    auto r = m.initRoot<wire::Request>();
    ToWire(kRoot, r.initCaller());
    auto a = r.initSetAttr();
    a.setIno(ino.value);
    a.setMask(kSetSize);
    a.setSize(size);
  }
};

TEST_F(ReplayTest, AResentChangeIsAnsweredFromItsStoredReplyAndNotAppliedAgain) {
  InodeId f = CreateOwned("f");
  capnp::MallocMessageBuilder m;
  SetTruncate(m, f, 5);
  ASSERT_TRUE(Apply(m, RequestId(2)));
  capnp::MallocMessageBuilder later;
  SetTruncate(later, f, 9);
  ASSERT_TRUE(Apply(later, RequestId(3)));

  auto reply = Resend(m, RequestId(2));
  ASSERT_TRUE(reply) << "the resent truncate would run again";
  ASSERT_TRUE(reply->root().isAttr());
  EXPECT_EQ(reply->root().getAttr().getSize(), 5u) << "the reply it had then";
  EXPECT_EQ(reply->root().getGrants().size(), 0u);
  EXPECT_EQ(fs_->GetAttr(f)->size, 9u) << "applied again";
}

TEST_F(ReplayTest, AChangeWhoseReplyWasNotStoredIsAnsweredFromTheStore) {
  InodeId f = CreateOwned("f");
  capnp::MallocMessageBuilder m;
  SetTruncate(m, f, 7);
  ASSERT_TRUE(Apply(m, RequestId(2)));
  ForgetCompleteReply(RequestId(2));

  auto reply = Resend(m, RequestId(2));
  ASSERT_TRUE(reply) << "the resent truncate would run again";
  EXPECT_EQ(reply->root().getErrno(), 0);
  ASSERT_TRUE(reply->root().isAttr()) << "a reply without the attributes the client expects";
  EXPECT_EQ(reply->root().getAttr().getIno(), f.value);
  EXPECT_EQ(reply->root().getAttr().getSize(), 7u);
}

TEST_F(ReplayTest, ARebuiltReplyToACreateCarriesTheNewInodeAndItsDirectory) {
  CreateOwned("first");  // request id 1
  InodeId ino(first_ino_ + owned_++);
  capnp::MallocMessageBuilder m;
  auto r = m.initRoot<wire::Request>();
  SetMkdir(r, kRootInode, "d", ino.value);
  ASSERT_TRUE(Apply(m, RequestId(2)));
  ForgetCompleteReply(RequestId(2));

  auto reply = Resend(m, RequestId(2));
  ASSERT_TRUE(reply);
  ASSERT_TRUE(reply->root().isAttr());
  EXPECT_EQ(reply->root().getAttr().getIno(), ino.value);
  EXPECT_TRUE(S_ISDIR(reply->root().getAttr().getMode()));
  ASSERT_EQ(reply->root().getChanged().size(), 1u);
  EXPECT_EQ(reply->root().getChanged()[0].getIno(), kRootInode.value);
  EXPECT_EQ(reply->root().getChanged()[0].getNlink(), 3u) << "the root's link from d";
}

}  // namespace
}  // namespace cohfs::test
