// What the parts of FsClient (fs_client*.cc) share and nobody else needs.
#pragma once

#include <capnp/message.h>

#include "client/rpc.h"

namespace cohfs {

// A request with no caller of its own (the client's bookkeeping).
struct OwnRequest {
  capnp::MallocMessageBuilder message;
  wire::Request::Builder root;
  OwnRequest() : root(message.initRoot<wire::Request>()) { ToWire(Caller{}, root.initCaller()); }
};

}  // namespace cohfs
