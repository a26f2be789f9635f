// CRC-32C (Castagnoli), as used for every 4 KiB data block on the device.
#pragma once

#include <cstddef>
#include <cstdint>

namespace cohfs {

// Extends `crc` over `data`. Start with 0. Uses SSE4.2 when the CPU has it.
uint32_t Crc32c(uint32_t crc, const void* data, size_t bytes);

}  // namespace cohfs
