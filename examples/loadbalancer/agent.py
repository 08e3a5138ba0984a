#!/usr/bin/env python3
"""The Python half of the load-balancer example: reads observations, answers with actions.

    agent.py [--shm DIR] [--until-seq N] [--timeout-s 60]

Attaches to the channel "lb-observations" (waiting for the data plane to create it), creates
"lb-actions", and for every observation newer than the last one it answered (it always takes the
newest: an action for an old observation is worth little) publishes an action: weights for the
64 servers, favouring spare capacity, zero for servers that are down, plus a Vose alias table
so the data plane samples a server in O(1). The action carries the observation's sequence id.
Stops after answering observation N (--until-seq) or at the timeout; prints a JSON summary.
Message layouts: lb_messages.h (OBS / ACTION below are the same bytes).
"""
import argparse
import json
import struct
import sys
import time

from modelswap import channel

SERVERS, FEATURES = 64, 10
OBS = struct.Struct(f"<QQQ{SERVERS}I{SERVERS * FEATURES}f")  # lb_observation, 2840 bytes
ACTION = struct.Struct(f"<QQ{SERVERS}f{SERVERS}f{SERVERS}I")  # lb_action, 784 bytes
CAPACITY, QUEUE = 0, 4  # feature columns (data_plane.cc)


def weights_for(active: int, flows, features) -> list:
    """Spare capacity per server that is up, normalised to sum 1."""
    scores = []
    for i in range(SERVERS):
        if not active >> i & 1:
            scores.append(0.0)
            continue
        cap = features[i * FEATURES + CAPACITY]
        queue = features[i * FEATURES + QUEUE]
        scores.append(cap / (1.0 + flows[i] / 100.0 + queue / 10.0))
    total = sum(scores)
    return [s / total for s in scores] if total > 0 else [1.0 / SERVERS] * SERVERS


def alias_table(weights):
    """Vose's alias method: prob[i], alias[i] such that column i keeps i with prob[i]."""
    n = len(weights)
    scaled = [w * n for w in weights]
    prob, alias = [1.0] * n, list(range(n))
    small = [i for i, s in enumerate(scaled) if s < 1.0]
    large = [i for i, s in enumerate(scaled) if s >= 1.0]
    while small and large:
        s, g = small.pop(), large.pop()
        prob[s], alias[s] = scaled[s], g
        scaled[g] -= 1.0 - scaled[s]
        (small if scaled[g] < 1.0 else large).append(g)
    for i in small + large:  # leftovers are 1 up to rounding
        prob[i], alias[i] = 1.0, i
    return prob, alias


def attach(shm, deadline):
    while True:
        try:
            return channel.ChannelReader(shm, "lb-observations", OBS.size, start="oldest")
        except channel.ChannelError as e:
            if e.code != "NotFound" or time.monotonic() > deadline:
                raise
        time.sleep(0.01)  # the data plane has not created it yet


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shm", default=channel.default_shm_dir())
    ap.add_argument("--until-seq", type=int, default=0)
    ap.add_argument("--timeout-s", type=float, default=60.0)
    args = ap.parse_args(argv)
    deadline = time.monotonic() + args.timeout_s
    observations = attach(args.shm, deadline)
    actions = channel.ChannelWriter(args.shm, "lb-actions", 4, ACTION.size)
    answered, last = 0, 0
    while time.monotonic() < deadline:
        m = observations.read_latest()
        if m is None or m.seq <= last:
            time.sleep(0.001)
            continue
        fields = OBS.unpack(m.data)
        seq, active = fields[0], fields[2]
        flows = fields[3:3 + SERVERS]
        features = fields[3 + SERVERS:]
        w = weights_for(active, flows, features)
        prob, alias = alias_table(w)
        actions.publish(ACTION.pack(seq, time.monotonic_ns(), *w, *prob, *alias))
        answered, last = answered + 1, m.seq
        if args.until_seq and seq >= args.until_seq:
            break
    print(json.dumps({"answered": answered, "last_obs_seq": last,
                      "skipped_observations": observations.total_missed}))
    return 0 if not args.until_seq or last >= args.until_seq else 2


if __name__ == "__main__":
    sys.exit(main())
