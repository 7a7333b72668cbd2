#!/usr/bin/env python3
"""Mutates the logs of a directory and runs `shmkeeper report` over them:
every run must end with a documented status (0, 2 or 3), never a crash, and
the JSON must parse.

usage: report_fuzz.py TOOL BASEDIR WORKDIR ITERATIONS SEED
"""
import json
import os
import random
import shutil
import struct
import subprocess
import sys


def mutate(b, rnd):
    for _ in range(rnd.randint(1, 12)):
        if not b:
            break
        at = rnd.randrange(len(b))
        r = rnd.random()
        if r < 0.4:
            b[at] = rnd.randrange(256)
        elif r < 0.6 and at >= 4096:
            at &= ~7   # a plausible head word: magic, any type, any length
            if at + 4 <= len(b):
                b[at:at + 4] = struct.pack("<I", (0xA5 << 24) | (rnd.randrange(21) << 16)
                                           | rnd.randrange(1 << 16))
        elif r < 0.8 and at + 8 <= len(b):
            b[at:at + 8] = struct.pack("<q", rnd.choice(
                [-1, 0, 1, 2**62, -2**62, rnd.randrange(2**63)]))
        else:
            del b[rnd.randrange(len(b) + 1):]
    return b


def main(tool, base, work, iterations, seed):
    rnd = random.Random(seed)
    files = sorted(f for f in os.listdir(base) if f.endswith(".shmk"))
    for it in range(iterations):
        shutil.rmtree(work, ignore_errors=True)
        os.makedirs(work)
        for f in files:
            b = bytearray(open(os.path.join(base, f), "rb").read())
            if rnd.random() < 0.8:
                b = mutate(b, rnd)
            open(os.path.join(work, f), "wb").write(b)
        for fmt in ("text", "json"):
            p = subprocess.run([tool, "report", "--format=" + fmt, "--show-all", work],
                               capture_output=True)
            if p.returncode not in (0, 2, 3):
                print("seed %d iteration %d --format=%s: exit %d" % (seed, it, fmt, p.returncode))
                print(p.stderr.decode(errors="replace")[-2000:])
                return 1
            if fmt == "json":
                try:
                    json.loads(p.stdout)
                except ValueError as e:
                    print("seed %d iteration %d: JSON does not parse: %s" % (seed, it, e))
                    return 1
    print("%d mutated directories reported, seed %d" % (iterations, seed))
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 6:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])))
