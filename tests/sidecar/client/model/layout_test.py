"""The Python client's transcription of control_block.h matches the C header.

usage: layout_test.py READER_HELPER   (its `layout` mode prints the C offsets)
"""
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "..", "..",
                                "sidecar", "client", "python"))
from modelswap import model  # noqa: E402

HELPER = sys.argv.pop(1)


class LayoutTest(unittest.TestCase):
    def test_offsets_match_the_c_header(self):
        out = subprocess.run([HELPER, "layout"], check=True, capture_output=True, text=True).stdout
        c = dict((k, int(v)) for k, v in (line.split() for line in out.splitlines()))
        for name, off in model.LAYOUT.items():
            self.assertEqual(c[name], off, name)
        self.assertEqual(c["magic_value"], model.MAGIC)
        self.assertEqual(c["file_bytes_value"], model.FILE_BYTES)
        self.assertEqual(c["slots_offset"], 12)


if __name__ == "__main__":
    unittest.main()
