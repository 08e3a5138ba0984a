"""The pure-Python XXH3 equals the C++ one (the .msf key hash) for lengths 0..1100 and 4 seeds.

usage: xxh3_test.py READER_HELPER   (its `xxh3` mode prints "len seed hash" lines)
"""
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "..", "..",
                                "sidecar", "client", "python"))
from modelswap.xxh3 import xxh3_64_pure  # noqa: E402

HELPER = sys.argv.pop(1)


class Xxh3Test(unittest.TestCase):
    def test_matches_cpp(self):
        out = subprocess.run([HELPER, "xxh3"], check=True, capture_output=True, text=True).stdout
        data = bytes((i * 131 + 7) & 0xFF for i in range(1100))
        lines = out.splitlines()
        self.assertEqual(len(lines), 4 * 1101)
        for line in lines:
            n, seed, want = (int(x) for x in line.split())
            self.assertEqual(xxh3_64_pure(data[:n], seed), want, "len %d seed %d" % (n, seed))


if __name__ == "__main__":
    unittest.main()
