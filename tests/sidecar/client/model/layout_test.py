"""The Python client's transcription of control_block.h matches the C header.

Two sources: the offsets the compiled helper prints (offsetof/sizeof), and the header's own
static asserts and defines, which the compiler holds to (so their numbers are the struct's). Every
name in model.LAYOUT must be confirmed by at least one of them, and none may disagree.

usage: layout_test.py READER_HELPER   (its `layout` mode prints the C offsets)
"""
import os
import re
import subprocess
import sys
import unittest

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "..")
sys.path.insert(0, os.path.join(ROOT, "sidecar", "client", "python"))
from modelswap import model, msf  # noqa: E402

HELPER = sys.argv.pop(1)
HEADER = os.path.join(ROOT, "sidecar", "client", "model", "control_block.h")


def header_text():
    with open(HEADER) as f:
        return re.sub(r"\s+", " ", f.read())


def asserted_offsets(text):
    """name -> offset from the header's MS_CTL_STATIC_ASSERTs, in LAYOUT's naming."""
    out = {}
    for field, n in re.findall(r"MS_CTL_STATIC_ASSERT\( ?offsetof\(ms_ctl_header, record\) \+ "
                               r"offsetof\(ms_ctl_record, (\w+)\) == (\d+)", text):
        name = {"version_words": "version", "path_words": "path"}.get(field, field)
        out["record." + name] = int(n)
    for field, n in re.findall(r"MS_CTL_STATIC_ASSERT\( ?offsetof\(ms_ctl_header, (\w+)\) == "
                               r"(\d+)", text):
        out[{"model_words": "model"}.get(field, field)] = int(n)
    m = re.search(r"MS_CTL_STATIC_ASSERT\( ?sizeof\(ms_ctl_record\) == (\d+)", text)
    if m:
        out["record.size"] = int(m.group(1))
    return out


def define(text, name):
    m = re.search(r"#define %s (\d+)u?\b" % name, text)
    return int(m.group(1)) if m else None


class LayoutTest(unittest.TestCase):
    def test_offsets_match_the_c_header(self):
        out = subprocess.run([HELPER, "layout"], check=True, capture_output=True, text=True).stdout
        c = dict((k, int(v)) for k, v in (line.split() for line in out.splitlines()))
        asserted = asserted_offsets(header_text())
        # The chain fields must be pinned by the header itself (the helper may not print them).
        for name in ("record.layer_count", "record.chain_len", "record.layer_checksums",
                     "record.chain_words", "record.size", "record.path", "record.version"):
            self.assertIn(name, asserted, "control_block.h asserts no offset for " + name)
        for name, off in model.LAYOUT.items():
            self.assertTrue(name in c or name in asserted, name + " is checked by neither")
            if name in c:
                self.assertEqual(c[name], off, name + " (helper)")
            if name in asserted:
                self.assertEqual(asserted[name], off, name + " (control_block.h)")
        self.assertEqual(c["magic_value"], model.MAGIC)
        self.assertEqual(c["file_bytes_value"], model.FILE_BYTES)
        self.assertEqual(c["slots_offset"], 12)

    def test_chain_sizes_match_the_c_header(self):
        text = header_text()
        self.assertEqual(define(text, "MS_CTL_MAX_LAYERS"), model.MAX_LAYERS)
        self.assertEqual(define(text, "MS_CTL_CHAIN_BYTES"), model.CHAIN_BYTES)
        self.assertEqual(model.MAX_LAYERS, msf.MAX_CHAIN_LAYERS)
        # The fields follow each other: 8 checksums, then the chain words up to reserved3.
        L = model.LAYOUT
        self.assertEqual(L["record.layer_checksums"] + 8 * model.MAX_LAYERS,
                         L["record.chain_words"])
        self.assertEqual(L["record.chain_words"] + model.CHAIN_BYTES,
                         L["record"] + L["record.size"])


class MsfConstantsTest(unittest.TestCase):
    """msf.py's transcription of sidecar/msf/format.h (its constants, read from the source)."""

    def test_match_format_h(self):
        with open(os.path.join(ROOT, "sidecar", "msf", "format.h")) as f:
            text = f.read()
        want = {"kFlagDelta": msf.FLAG_DELTA, "kTombstoneLength": msf.TOMBSTONE_LENGTH,
                "kMaxChainDeltas": msf.MAX_CHAIN_DELTAS, "kOffBaseVersion": msf.OFF_BASE_VERSION,
                "kOffBaseChecksum": msf.OFF_BASE_CHECKSUM, "kOffChainDepth": msf.OFF_CHAIN_DEPTH,
                "kOffTombstoneCount": msf.OFF_TOMBSTONE_COUNT, "kOffFlags": msf.OFF_FLAGS,
                "kOffHeaderChecksum": msf.OFF_HEADER_CHECKSUM, "kOffVersion": msf.OFF_VERSION}
        for name, value in want.items():
            m = re.search(r"constexpr \w+ %s = (0x[0-9A-Fa-f]+|\d+)u?;" % name, text)
            self.assertIsNotNone(m, name + " not found in format.h")
            self.assertEqual(int(m.group(1), 0), value, name)


if __name__ == "__main__":
    unittest.main()
