// Lookups and the leaves that come with them: neighbouring entries, and
// small files' content, so one round trip answers the operations that follow.
#include <sys/stat.h>

#include "common/limits.h"
#include "server/dispatch.h"
#include "server/dispatch_ctx.h"

namespace cohfs {

// A small regular file's content rides with its entry in a leaf (the caller
// may read it, and it is granted), so reading it costs no round trip; at
// most kLeafContentBytes a reply.
void Dispatcher::AttachContent(const Caller& c, const Attr& attr, wire::Entry::Builder out,
                               size_t* bytes) {
  if (!S_ISREG(attr.mode) || attr.size == 0 || attr.size > kInlineMaxBytes) return;
  if (*bytes + attr.size > kLeafContentBytes) return;
  auto data = fs_.Read(c, attr.ino, 0, static_cast<uint32_t>(attr.size), /*note_atime=*/false);
  if (!data.ok() || data->size() != attr.size) return;
  out.setInlineData(AsData(*data));
  *bytes += data->size();
}

// The name (and its absence) stays valid while the directory is held. With
// the lookup come neighbouring entries, each granted SHARED: a small
// directory whole (a directory's size is its entry count), else a page of
// it from the name on, in creation order (the order tar made them and
// readdir lists them), so one round trip answers the lookups that follow.
Status Dispatcher::Lookup(Ctx& ctx) {
  auto l = ctx.req.getLookup();
  InodeId parent(l.getParent());
  std::string_view name = AsView(l.getName());
  RETURN_IF_ERROR(CheckRequestName(name));
  uint64_t seq = 0;
  auto r = fs_.Lookup(ctx.caller, parent, name, &seq);
  if (!r.ok() && r.errno_value() != ENOENT) return r.status();
  bool dir_held = Grant(ctx, parent, LockMode::kShared) != LockMode::kNone;
  if (dir_held && l.getWantLeaf()) {
    auto dir_attr = fs_.GetAttr(parent);
    bool small = dir_attr.ok() && dir_attr->size <= config_.leaf_max_entries;
    Result<std::vector<DirEntry>> entries = std::vector<DirEntry>();
    if (small) {
      entries = fs_.ReadDir(ctx.caller, parent, 0, config_.leaf_max_entries + 1);
    } else if (r.ok() && seq > 0) {
      entries = fs_.ReadDir(ctx.caller, parent, seq - 1, config_.leaf_max_entries);
    }
    if (entries.ok() && !entries->empty()) {
      bool whole = small && entries->size() <= config_.leaf_max_entries;
      auto leaf = ctx.reply.initLeaf(static_cast<unsigned>(entries->size()));
      size_t content_bytes = 0;
      for (size_t i = 0; i < entries->size(); i++) {
        const DirEntry& e = (*entries)[i];
        auto out = leaf[static_cast<unsigned>(i)];
        ToWire(e, out);
        if (Grant(ctx, e.attr.ino, LockMode::kShared) != LockMode::kNone) {
          AttachContent(ctx.caller, e.attr, out, &content_bytes);
        }
      }
      ctx.reply.setLeafComplete(whole);
    } else if (entries.ok() && small) {
      ctx.reply.initLeaf(0);
      ctx.reply.setLeafComplete(true);
    }
  }
  if (!r.ok()) {
    if (!dir_held) return r.status();
    ctx.reply.setNone();
    return Status::Ok();  // negative, cacheable under the directory's lock
  }
  ToWire(*r, ctx.reply.initAttr());
  Grant(ctx, r->ino, LockMode::kShared);
  return Status::Ok();
}

}  // namespace cohfs
