#!/usr/bin/env python3
"""Writes the fuzz targets' starting inputs into node/fuzz/seeds/TARGET/ from real parts:
an FLV that ffmpeg encodes, the bytes ffmpeg sends when it publishes that FLV to a
`castmesh --dev` node (recorded by a relay in between), the config files in configs/.
`make fuzz` runs it when seeds/ is missing; the fuzzer's minimised corpus (corpus/)
grows from these. Usage: make_seeds.py CASTMESH_BINARY
"""

import os
import pathlib
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = pathlib.Path(__file__).resolve().parent
SEEDS = HERE / "seeds"


def write(target, name, data):
    d = SEEDS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)


def flv_tags(path):
    """(type, timestamp_ms, body, raw tag with its back pointer) of each FLV tag."""
    data = path.read_bytes()
    pos = 9 + 4  # header, first back pointer
    while pos + 11 <= len(data):
        kind = data[pos]
        size = int.from_bytes(data[pos + 1:pos + 4], "big")
        ts = int.from_bytes(data[pos + 4:pos + 7], "big") | (data[pos + 7] << 24)
        body = data[pos + 11:pos + 11 + size]
        raw = data[pos:pos + 11 + size + 4]
        yield kind, ts, body, raw
        pos += 11 + size + 4


def media_seeds(flv):
    tags = [t for t in flv_tags(flv) if t[0] in (8, 9) and len(t[2]) < 65536]
    # flv_media: [type][ts u32][len u16][body]; the configurations then a few frames.
    packed = b"".join(bytes([k]) + struct.pack(">IH", ts, len(b)) + b for k, ts, b, _ in tags[:40])
    write("flv_media", "ffmpeg-h264-aac", packed)
    # aggregate_message: [ts u32] then FLV tags with back pointers, as RTMP type 22.
    aggregate = struct.pack(">I", tags[0][1]) + b"".join(raw for _, _, _, raw in tags[:12])
    write("aggregate_message", "ffmpeg-h264-aac", aggregate)


class Relay:
    """Accepts one client, connects it to the node, records what the client sends."""

    def __init__(self, upstream):
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(1)
        self.port = self.listener.getsockname()[1]
        self.upstream = upstream
        self.sent = bytearray()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        client, _ = self.listener.accept()
        server = socket.create_connection(self.upstream)

        def pump(src, dst, record):
            while True:
                try:
                    chunk = src.recv(65536)
                except OSError:
                    chunk = b""
                if not chunk:
                    try:
                        dst.shutdown(socket.SHUT_WR)
                    except OSError:
                        pass
                    return
                if record:
                    self.sent.extend(chunk)
                dst.sendall(chunk)

        back = threading.Thread(target=pump, args=(server, client, False), daemon=True)
        back.start()
        pump(client, server, True)
        back.join(timeout=5)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def rtmp_seeds(castmesh, flv):
    rtmp, http = free_port(), free_port()
    with tempfile.TemporaryDirectory() as data:
        node = subprocess.Popen(
            [castmesh, "--dev", "--rtmp-listen", f"127.0.0.1:{rtmp}",
             "--http-listen", f"127.0.0.1:{http}",
             "--cluster-grpc-listen", f"127.0.0.1:{free_port()}",
             "--mesh-listen", f"127.0.0.1:{free_port()}",
             "--cluster-data-dir", data],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(100):
                try:
                    socket.create_connection(("127.0.0.1", rtmp)).close()
                    break
                except OSError:
                    time.sleep(0.1)
            relay = Relay(("127.0.0.1", rtmp))
            subprocess.run(
                ["ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-i", str(flv),
                 "-c", "copy", "-f", "flv", f"rtmp://127.0.0.1:{relay.port}/live/seed"],
                check=True, timeout=60)
            relay.thread.join(timeout=10)
        finally:
            node.terminate()
            node.wait()
    sent = bytes(relay.sent)
    handshake = 1537 + 1536
    # Mode byte: odd = after a real handshake; upper bits pick the read size.
    for mode in (0x01, 0x03, 0x07):
        write("rtmp_session", f"ffmpeg-publish-{mode:02x}", bytes([mode]) + sent[handshake:handshake + 48000])
    write("rtmp_session", "ffmpeg-handshake", bytes([0x00]) + sent[:handshake])


def other_seeds():
    for name, text in {
        "part": "/hls/show/part-00000007-12.3.m4s",
        "reload": "/hls/show/media.m3u8?_HLS_msn=12&_HLS_part=3",
        "segment": "/hls/show/seg-00000007-12.m4s?x=1",
        "init": "/hls/show/init-00000007-1.mp4",
        "far": "/hls/sh%6Fw/media.m3u8?_HLS_msn=18446744073709551615&_HLS_part=4294967295",
    }.items():
        write("hls_request", name, text.encode())
    for conf in (HERE.parent.parent / "configs").rglob("*.toml"):
        write("config_file", conf.name, conf.read_bytes())
    write("forwarded_headers", "both",
          b'x-forwarded-for: 203.0.113.5, 10.0.0.1\nforwarded: for=192.0.2.60;proto=http, for="[2001:db8::1]:4711"\n')
    write("proxy_header", "v1", b"PROXY TCP4 203.0.113.9 10.0.0.1 51234 1935\r\n\x03")
    write("proxy_header", "v1-unknown", b"PROXY UNKNOWN\r\n")
    write("proxy_header", "v2", b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c\xc6\x33\x64\x07\x0a\x00\x00\x01\x1f\x90\x07\x8f\x03")
    # A request frame: Request{ping{}} (field 1, empty message), and a Subscribe.
    write("mesh_frames", "ping", struct.pack(">H", 2) + b"\x0a\x00")
    subscribe = b"\x0a\x04show\x10\x01\x18\x05"
    write("mesh_frames", "subscribe", struct.pack(">H", len(subscribe) + 2) + b"\x12" + bytes([len(subscribe)]) + subscribe)


def main():
    castmesh = sys.argv[1]
    with tempfile.TemporaryDirectory() as tmp:
        flv = pathlib.Path(tmp) / "seed.flv"
        subprocess.run(
            ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
             "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=15",
             "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=22050",
             "-t", "3", "-ac", "1", "-c:v", "libx264", "-profile:v", "high", "-bf", "2",
             "-preset", "veryfast", "-pix_fmt", "yuv420p", "-b:v", "100k",
             "-x264-params", "keyint=15:scenecut=0", "-c:a", "aac", "-b:a", "32k", str(flv)],
            check=True)
        media_seeds(flv)
        rtmp_seeds(castmesh, flv)
    other_seeds()
    print(f"seeds written to {SEEDS}")


if __name__ == "__main__":
    os.chdir(HERE)
    main()
