#include "protocol/frame.h"

#include <algorithm>
#include <cstring>

#include "common/check.h"
#include "common/limits.h"

namespace cohfs {
namespace {

void Put32(char* p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = static_cast<char>(v >> (8 * i));
}
void Put64(char* p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = static_cast<char>(v >> (8 * i));
}
uint32_t Get32(const char* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; i++) v |= uint32_t(uint8_t(p[i])) << (8 * i);
  return v;
}
uint64_t Get64(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v |= uint64_t(uint8_t(p[i])) << (8 * i);
  return v;
}

bool LengthsValid(uint32_t message_bytes, uint32_t bulk_bytes) {
  return message_bytes >= 8 && message_bytes % 8 == 0 && message_bytes <= kMaxMessageBytes &&
         bulk_bytes <= kMaxBulkBytes;
}

}  // namespace

void EncodeFrameHeader(const FrameHeader& h, char out[kFrameHeaderBytes]) {
  CHECK_MSG(LengthsValid(h.message_bytes, h.bulk_bytes), "frame too large to send");
  Put32(out, kFrameMagic);
  out[4] = static_cast<char>(h.kind);
  out[5] = 0;
  out[6] = out[7] = 0;
  Put64(out + 8, h.request_id.value);
  Put32(out + 16, h.message_bytes);
  Put32(out + 20, h.bulk_bytes);
}

Status DecodeFrameHeader(const char in[kFrameHeaderBytes], FrameHeader* h) {
  if (Get32(in) != kFrameMagic) return Status::Error(EPROTO, "bad frame magic");
  uint8_t kind = static_cast<uint8_t>(in[4]);
  if (kind != static_cast<uint8_t>(FrameKind::kRequest) &&
      kind != static_cast<uint8_t>(FrameKind::kReply) &&
      kind != static_cast<uint8_t>(FrameKind::kRecall)) {
    return Status::Error(EPROTO, "unknown frame kind " + std::to_string(kind));
  }
  if (in[5] != 0 || in[6] != 0 || in[7] != 0) return Status::Error(EPROTO, "reserved bits set");
  h->kind = static_cast<FrameKind>(kind);
  h->request_id = RequestId(Get64(in + 8));
  h->message_bytes = Get32(in + 16);
  h->bulk_bytes = Get32(in + 20);
  if (!LengthsValid(h->message_bytes, h->bulk_bytes)) {
    return Status::Error(EPROTO, "frame lengths out of bounds: message " +
                                     std::to_string(h->message_bytes) + " bulk " +
                                     std::to_string(h->bulk_bytes));
  }
  return Status::Ok();
}

size_t OutFrame::total_bytes() const {
  return kFrameHeaderBytes + message.size() * sizeof(capnp::word) + bulk.size();
}

void OutFrame::AppendIovecs(size_t skip, std::vector<iovec>* out) const {
  const char* parts[3] = {header, reinterpret_cast<const char*>(message.begin()), bulk.data()};
  size_t sizes[3] = {kFrameHeaderBytes, message.size() * sizeof(capnp::word), bulk.size()};
  for (int i = 0; i < 3; i++) {
    if (skip >= sizes[i]) {
      skip -= sizes[i];
      continue;
    }
    out->push_back(iovec{const_cast<char*>(parts[i]) + skip, sizes[i] - skip});
    skip = 0;
  }
}

RequestId OutFrame::request_id() const { return RequestId(Get64(header + 8)); }

char* FrameReader::WritableTail(size_t min_bytes, size_t* available) {
  if (cap_ == 0) Resize(kInitialBufferBytes);
  if (cap_ - end_ < min_bytes) {
    Compact();  // first; grow only when a single frame needs more room
    if (cap_ - end_ < min_bytes) Resize(std::max(end_ + min_bytes, 2 * cap_));
  }
  *available = cap_ - end_;
  return buf_.get() + end_;
}

char* FrameReader::BoundedTail(size_t* available) {
  if (cap_ == 0) Resize(kInitialBufferBytes);
  if (cap_ - end_ < kInitialBufferBytes / 4) Compact();
  *available = cap_ - end_;
  return buf_.get() + end_;
}

size_t FrameReader::NeededCapacity() const {
  FrameHeader h;
  if (buffered_bytes() < kFrameHeaderBytes || !DecodeFrameHeader(buf_.get() + begin_, &h).ok()) {
    return kInitialBufferBytes;
  }
  size_t total = kFrameHeaderBytes + size_t(h.message_bytes) + h.bulk_bytes;
  return std::max(total, kInitialBufferBytes);
}

void FrameReader::Compact() {
  if (begin_ == 0) return;
  std::memmove(buf_.get(), buf_.get() + begin_, end_ - begin_);
  end_ -= begin_;
  begin_ = 0;
}

void FrameReader::Resize(size_t bytes) {
  size_t have = buffered_bytes();
  bytes = std::max(bytes, have);
  if (bytes == cap_ && begin_ == 0) return;
  auto grown = std::make_unique_for_overwrite<char[]>(bytes);
  if (have > 0) std::memcpy(grown.get(), buf_.get() + begin_, have);
  buf_ = std::move(grown);
  cap_ = bytes;
  begin_ = 0;
  end_ = have;
}

void FrameReader::CommitReceived(size_t bytes) {
  CHECK(end_ + bytes <= cap_);
  end_ += bytes;
}

Result<std::optional<InFrame>> FrameReader::Next() {
  size_t have = end_ - begin_;
  if (have < kFrameHeaderBytes) return std::optional<InFrame>();
  FrameHeader h;
  RETURN_IF_ERROR(DecodeFrameHeader(buf_.get() + begin_, &h));
  size_t total = kFrameHeaderBytes + size_t(h.message_bytes) + h.bulk_bytes;
  if (have < total) return std::optional<InFrame>();
  InFrame f;
  f.header = h;
  f.message = kj::heapArray<capnp::word>(h.message_bytes / sizeof(capnp::word));
  const char* p = buf_.get() + begin_ + kFrameHeaderBytes;
  std::memcpy(f.message.begin(), p, h.message_bytes);
  f.bulk.assign(p + h.message_bytes, h.bulk_bytes);
  begin_ += total;
  if (begin_ == end_) begin_ = end_ = 0;
  return std::optional<InFrame>(std::move(f));
}

InFrame ThroughWire(const OutFrame& f) {
  std::vector<iovec> iov;
  f.AppendIovecs(0, &iov);
  FrameReader reader;
  for (const iovec& v : iov) {
    size_t avail = 0;
    std::memcpy(reader.WritableTail(v.iov_len, &avail), v.iov_base, v.iov_len);
    reader.CommitReceived(v.iov_len);
  }
  auto next = reader.Next();
  CHECK(next.ok() && next->has_value());
  return std::move(**next);
}

}  // namespace cohfs
