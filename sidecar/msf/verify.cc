// Full verification of an .msf (format.h, "Reader checks"): section checksums, zero padding, a
// walk of DATA (entry and tombstone counts) and the proof that INDEX indexes DATA. Every check
// has its own message; tests/sidecar/msf/msf_reader_test.cc has one test per check.
#include <algorithm>
#include <random>

#include "common/checksum.h"
#include "sidecar/msf/cursor.h"
#include "sidecar/msf/reader.h"
#include "sidecar/msf/reader_internal.h"

namespace modelswap::msf {
namespace {

using internal::AllZero;
using internal::Corrupt;
using internal::FindSection;

// Mixes an entry's DATA offset into the digest that proves the index's slots and DATA's entry
// starts are the same set (see WalkIndex). Keyed per verification with a random key, so a crafted
// file cannot choose offsets whose digests collide.
uint64_t MixOffset(uint64_t offset, uint64_t key) {
  std::byte bytes[8];
  StoreU64(bytes, offset);
  return Xxh3WithSeed(bytes, key);
}

uint64_t RandomDigestKey() {
  std::random_device rd;
  return (uint64_t{rd()} << 32) ^ rd();
}

// Every entry lies inside DATA, DATA holds exactly entry_count entries (tombstone_count of them
// tombstones, none in a full file) and nothing after them. Sums MixOffset of every entry start
// into *digest (8 bytes of state however many entries).
Status WalkData(std::span<const std::byte> data, const Header& h, uint64_t digest_key,
                uint64_t* digest) {
  Cursor c(data);
  uint64_t count = 0, tombstones = 0;
  while (c.remaining() > 0) {
    const uint64_t at = c.position();
    internal::RawEntry e;
    if (c.remaining() < kEntryHeaderSize) {
      return Corrupt("data section ends inside an entry header at offset " + std::to_string(at));
    }
    if (!internal::NextEntry(c, &e)) {
      return Corrupt("entry at data offset " + std::to_string(at) + " extends past the section");
    }
    if (count == h.entry_count) {
      return Corrupt("data section holds more entries than the header's entry count");
    }
    if (e.tombstone) {
      if (!h.delta) {
        return Corrupt("tombstone entry at data offset " + std::to_string(at) +
                       " in a full (non-delta) file");
      }
      ++tombstones;
    }
    ++count;
    *digest += MixOffset(at, digest_key);
  }
  if (count != h.entry_count) {
    return Corrupt("data section holds " + std::to_string(count) + " entries but the header says " +
                   std::to_string(h.entry_count));
  }
  if (tombstones != h.tombstone_count) {
    return Corrupt("data section holds " + std::to_string(tombstones) +
                   " tombstones but the header's tombstone count is " +
                   std::to_string(h.tombstone_count));
  }
  return Ok();
}

// The key of the entry (value or tombstone) starting at `offset` of DATA, if a whole entry fits.
std::optional<std::span<const std::byte>> KeyAt(std::span<const std::byte> data, uint64_t offset) {
  if (offset > data.size()) return std::nullopt;
  Cursor c(data.subspan(offset));
  internal::RawEntry e;
  if (!internal::NextEntry(c, &e)) return std::nullopt;
  return e.key;
}

struct RunSlot {
  uint64_t hash;
  uint64_t offset;
  uint64_t slot;
  std::span<const std::byte> key;
};

bool KeyLess(std::span<const std::byte> a, std::span<const std::byte> b) {
  return std::lexicographical_compare(a.begin(), a.end(), b.begin(), b.end());
}

// Within one run of used slots (between two empty ones) no two slots may name the same key: a
// key's probe sequence stops at the first match, so the second would never be found. Two slots
// for one key share its home and so its run; sorting by hash (keys only on equal hashes) keeps
// this O(run log run), runs being short in any index the builder makes (load <= 0.7).
Status CheckRunKeys(std::vector<RunSlot>& run) {
  if (run.size() < 2) return Ok();
  std::sort(run.begin(), run.end(), [](const RunSlot& a, const RunSlot& b) {
    if (a.hash != b.hash) return a.hash < b.hash;
    return KeyLess(a.key, b.key);
  });
  for (size_t i = 1; i < run.size(); ++i) {
    const RunSlot& a = run[i - 1];
    const RunSlot& b = run[i];
    if (a.hash != b.hash || !std::ranges::equal(a.key, b.key)) continue;
    if (a.offset == b.offset) {
      return Corrupt("index slots " + std::to_string(a.slot) + " and " + std::to_string(b.slot) +
                     " both point at the entry at data offset " + std::to_string(a.offset));
    }
    return Corrupt("duplicate key in the data section: entries at data offsets " +
                   std::to_string(a.offset) + " and " + std::to_string(b.offset) +
                   " (index slots " + std::to_string(a.slot) + " and " + std::to_string(b.slot) +
                   ")");
  }
  return Ok();
}

// Proves the index indexes the data, in time linear in the file (plus the per-run sort above):
//  - as many used slots as entries;
//  - every used slot points at a whole entry whose key hashes (with the header's seed) to the
//    slot's fingerprint, and lies in its key's probe sequence: no empty slot between the key's
//    home slot and it (the length of the run of used slots ending at a slot bounds that
//    distance);
//  - no two slots of a run name one key (CheckRunKeys): no entry listed twice, no key shadowed;
//  - the slots' offsets are exactly the entry starts: with the counts equal and no offset
//    listed twice, the keyed digests of the two sets agree only if they are the same set (up to
//    a 2^-64 chance, with a key the file cannot know).
// Together: Find(key) returns every entry of DATA, and nothing that is not one.
Status WalkIndex(std::span<const std::byte> slots, std::span<const std::byte> data, const Header& h,
                 uint64_t digest_key, uint64_t starts_digest) {
  const uint64_t capacity = slots.size() / 8;
  const uint64_t mask = capacity - 1;
  auto slot_at = [&](uint64_t i) { return LoadU64(slots.data() + i * 8); };
  uint64_t used = 0, first_empty = capacity;
  for (uint64_t i = 0; i < capacity; ++i) {
    if (slot_at(i) != 0) {
      ++used;
    } else if (first_empty == capacity) {
      first_empty = i;
    }
  }
  if (used != h.entry_count) {
    return Corrupt("index has " + std::to_string(used) + " used slots for " +
                   std::to_string(h.entry_count) + " entries");
  }
  // entry_count < capacity (CheckIndexShape), so first_empty exists. Walking from just after it
  // makes every run start inside the walk; the walk ends on first_empty, which closes the last.
  uint64_t digest = 0, run_length = 0;
  std::vector<RunSlot> run;
  for (uint64_t step = 1; step <= capacity; ++step) {
    const uint64_t p = (first_empty + step) & mask;
    const uint64_t slot = slot_at(p);
    if (slot == 0) {
      MS_RETURN_IF_ERROR(CheckRunKeys(run));
      run.clear();
      run_length = 0;
      continue;
    }
    ++run_length;
    const uint64_t offset = slot & kOffsetMask;
    auto key = KeyAt(data, offset);
    if (!key) {
      return Corrupt("index slot " + std::to_string(p) + " does not point at an entry");
    }
    const uint64_t hash = HashKey(*key, h.hash_seed);
    if ((slot >> kFingerprintShift) != Fingerprint(hash)) {
      return Corrupt("index slot " + std::to_string(p) +
                     " fingerprint does not match its entry's key (an edited slot, or a hash "
                     "seed that is not the one the index was built with)");
    }
    const uint64_t home = hash & mask;
    if (((p - home) & mask) >= run_length) {
      return Corrupt("index slot " + std::to_string(p) +
                     " is not reachable from its key's home slot " + std::to_string(home) +
                     " (an empty slot lies between)");
    }
    digest += MixOffset(offset, digest_key);
    run.push_back(RunSlot{hash, offset, p, *key});
  }
  if (digest != starts_digest) {
    return Corrupt(
        "index slots do not point at the starts of the data section's entries (a slot points "
        "inside an entry, or an entry is missing from the index)");
  }
  return Ok();
}

// No checksum covers the bytes between sections, so they must be zero: a flipped bit anywhere in
// the file is then caught.
Status CheckPadding(std::span<const std::byte> file, const Header& h) {
  uint64_t at = kHeaderSize;
  for (size_t i = 0; i <= h.sections.size(); ++i) {
    uint64_t next = i < h.sections.size() ? h.sections[i].offset : file.size();
    if (!AllZero(file.subspan(at, next - at))) {
      return Corrupt("non-zero bytes in the padding before " + (i < h.sections.size()
                                                                    ? "section " + std::to_string(i)
                                                                    : std::string("the end")));
    }
    if (i < h.sections.size()) at = h.sections[i].offset + h.sections[i].length;
  }
  return Ok();
}

}  // namespace

Status VerifyContents(std::span<const std::byte> file, const Header& header,
                      const std::function<void(uint64_t)>& on_progress) {
  constexpr uint64_t kStep = 256 << 20;  // report progress every 256 MiB
  uint64_t done = 0;
  for (size_t i = 0; i < header.sections.size(); ++i) {
    const SectionInfo& s = header.sections[i];
    auto bytes = file.subspan(s.offset, s.length);
    Xxh3Stream stream;
    for (uint64_t off = 0; off < bytes.size(); off += kStep) {
      stream.Update(bytes.subspan(off, std::min<uint64_t>(kStep, bytes.size() - off)));
      if (on_progress) on_progress(done + std::min<uint64_t>(off + kStep, bytes.size()));
    }
    done += bytes.size();
    if (stream.Digest() != s.checksum) {
      return Corrupt("section " + std::to_string(i) + " (" + std::string(SectionKindName(s.kind)) +
                     ") checksum mismatch");
    }
  }
  MS_RETURN_IF_ERROR(CheckPadding(file, header));
  const SectionInfo& data = FindSection(header, kSectionData);
  const SectionInfo& index = FindSection(header, kSectionIndex);
  const auto data_bytes = file.subspan(data.offset, data.length);
  const uint64_t digest_key = RandomDigestKey();
  uint64_t starts_digest = 0;
  MS_RETURN_IF_ERROR(WalkData(data_bytes, header, digest_key, &starts_digest));
  return WalkIndex(file.subspan(index.offset, index.length), data_bytes, header, digest_key,
                   starts_digest);
}

}  // namespace modelswap::msf
