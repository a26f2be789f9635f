#include "client/error_seq.h"

namespace cohfs {

uint64_t ErrorSeq::Open(InodeId ino) {
  std::lock_guard<std::mutex> l(mu_);
  InodeErrors& r = inodes_[ino];
  r.open++;
  uint64_t file = next_file_++;
  // A failure nobody has reported yet is this file's to report too.
  files_[file] = File{ino, r.seen ? r.seq : 0};
  return file;
}

void ErrorSeq::Close(uint64_t file) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = files_.find(file);
  if (it == files_.end()) return;
  InodeId ino = it->second.ino;
  files_.erase(it);
  auto r = inodes_.find(ino);
  if (r == inodes_.end()) return;
  r->second.open--;
  MaybeForget(ino);
}

void ErrorSeq::MaybeForget(InodeId ino) {
  auto it = inodes_.find(ino);
  if (it == inodes_.end() || it->second.open > 0) return;
  const InodeErrors& r = it->second;
  if (r.seq == 0 || r.seen || r.close_seen == r.seq) inodes_.erase(it);
}

void ErrorSeq::Record(InodeId ino, const Status& st) {
  std::lock_guard<std::mutex> l(mu_);
  InodeErrors& r = inodes_[ino];
  r.seq++;
  r.status = st;
  r.seen = false;
}

Status ErrorSeq::TakeForFsync(uint64_t file, InodeId ino) {
  std::lock_guard<std::mutex> l(mu_);
  auto f = files_.find(file);
  if (f == files_.end()) {
    auto r = inodes_.find(ino);
    if (r == inodes_.end() || r->second.close_seen == r->second.seq) return Status::Ok();
    r->second.close_seen = r->second.seq;
    r->second.seen = true;
    Status st = r->second.status;
    MaybeForget(ino);
    return st;
  }
  auto r = inodes_.find(f->second.ino);
  if (r == inodes_.end() || f->second.seen == r->second.seq) return Status::Ok();
  f->second.seen = r->second.seq;
  r->second.seen = true;
  return r->second.status;
}

Status ErrorSeq::TakeForClose(InodeId ino) {
  std::lock_guard<std::mutex> l(mu_);
  auto r = inodes_.find(ino);
  if (r == inodes_.end() || r->second.close_seen == r->second.seq) return Status::Ok();
  r->second.close_seen = r->second.seq;
  Status st = r->second.status;
  MaybeForget(ino);
  return st;
}

size_t ErrorSeq::records() const {
  std::lock_guard<std::mutex> l(mu_);
  return inodes_.size();
}

size_t ErrorSeq::open_files() const {
  std::lock_guard<std::mutex> l(mu_);
  return files_.size();
}

}  // namespace cohfs
