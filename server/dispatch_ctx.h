// Internal to the Dispatcher's .cc files: one request on its way through
// Dispatch, with the reply it builds.
#pragma once

#include <capnp/message.h>

#include <string>
#include <utility>
#include <vector>

#include "server/dispatch.h"

namespace cohfs {

struct Dispatcher::CommitFailure {
  uint32_t index;
  Status status;
  std::vector<InodeId> touched;  // touched[0], if any, is the failure's `ino`
};

struct Dispatcher::Ctx {
  Session& session;
  wire::Request::Reader req;
  std::string& request_bulk;
  capnp::MallocMessageBuilder message;
  wire::Reply::Builder reply;
  std::string reply_bulk;
  std::vector<std::pair<InodeId, LockMode>> grants;
  std::vector<InodeId> changed;  // attrs to attach besides the main one
  bool needs_sync = false;
  bool mutated = false;
  Caller caller;
  int64_t now_ms = 0;  // the lock manager's clock (contention)

  Ctx(Session& s, wire::Request::Reader r, std::string& bulk)
      : session(s), req(r), request_bulk(bulk), reply(message.initRoot<wire::Reply>()) {}
};

}  // namespace cohfs
