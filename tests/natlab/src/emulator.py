# Userspace link emulator for the supernode NAT lab, used when the kernel lacks sch_netem.
#
#   emulator.py offload-off DEV        turn off checksum/segmentation offloads on DEV
#   emulator.py run A B DELAY_US JITTER_US LOSS_PERCENT
#
# `run` bridges interfaces A and B of its own namespace at layer 2 through AF_PACKET sockets,
# holding each frame for DELAY ± JITTER and dropping LOSS_PERCENT of them, in both directions.
# Senders into the emulator must have offloads off: a frame captured with a partial checksum
# or as a 64 KiB segmentation super-packet cannot be re-sent as is.
import array
import fcntl
import heapq
import random
import select
import socket
import struct
import sys
import time

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
SIOCETHTOOL = 0x8946
# ETHTOOL_STXCSUM, ETHTOOL_SSG, ETHTOOL_STSO, ETHTOOL_SGSO, ETHTOOL_SGRO
OFFLOADS = (0x17, 0x19, 0x1F, 0x24, 0x2C)
# Frames held at once; beyond this new frames are dropped, as a full qdisc would.
MAX_QUEUE = 10000
MAX_FRAME = 65535


def offload_off(dev):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for cmd in OFFLOADS:
        value = array.array("I", [cmd, 0])
        ifreq = struct.pack("16sP", dev.encode(), value.buffer_info()[0])
        try:
            fcntl.ioctl(sock, SIOCETHTOOL, ifreq)
        except OSError:
            if cmd == OFFLOADS[0]:
                raise


def run(a, b, delay_us, jitter_us, loss):
    delay, jitter = delay_us / 1e6, jitter_us / 1e6
    socks = []
    for dev in (a, b):
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        s.bind((dev, 0))
        s.setblocking(False)
        socks.append(s)
    peer = {socks[0]: socks[1], socks[1]: socks[0]}
    queue, seq, dropped = [], 0, 0
    print("ready", flush=True)
    while True:
        timeout = max(0.0, queue[0][0] - time.monotonic()) if queue else None
        readable, _, _ = select.select(socks, [], [], timeout)
        for s in readable:
            while True:
                try:
                    frame, addr = s.recvfrom(MAX_FRAME)
                except BlockingIOError:
                    break
                if addr[2] == PACKET_OUTGOING:
                    continue
                if loss > 0 and random.random() * 100 < loss:
                    continue
                if len(queue) >= MAX_QUEUE:
                    dropped += 1
                    continue
                hold = delay + (random.uniform(-jitter, jitter) if jitter else 0.0)
                seq += 1
                heapq.heappush(queue, (time.monotonic() + max(0.0, hold), seq, peer[s], frame))
        now = time.monotonic()
        while queue and queue[0][0] <= now:
            _, _, out, frame = heapq.heappop(queue)
            try:
                out.send(frame)
            except OSError:
                dropped += 1


if __name__ == "__main__":
    if sys.argv[1] == "offload-off":
        offload_off(sys.argv[2])
    else:
        run(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6]))
