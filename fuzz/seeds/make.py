#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpora (fuzz/seeds/TARGET/) from the project's examples and
test corpora. Run from the repository root after they change; the output is checked in."""
import base64, glob, hashlib, io, json, os, re, struct, tarfile, zlib

root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
out = os.path.join(root, "fuzz", "seeds")

def put(target, data):
    if isinstance(data, str):
        data = data.encode()
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, hashlib.sha1(data).hexdigest()), "wb") as f:
        f.write(data)

def read(p):
    with open(os.path.join(root, p), "rb") as f:
        return f.read()

contracts = sorted(glob.glob(os.path.join(root, "contract/examples/*.json"))) + sorted(
    glob.glob(os.path.join(root, "contract/tests/bad/*.json")))
for p in contracts:
    text = open(p, "rb").read()
    put("contract", text)
    token = base64.urlsafe_b64encode(text).rstrip(b"=").decode()
    put("cmdline", f"hostcontract={token}")
    # The config device image of contract/src/blockdev.rs.
    header = b"HOSTCTRT" + struct.pack("<IIQI", 1, 512, len(text), zlib.crc32(text))
    header += struct.pack("<I", zlib.crc32(header))
    image = header.ljust(512, b"\0") + text
    image = image.ljust(512 + -(-len(text) // 512) * 512, b"\0")
    put("blockdev", image)
for p in glob.glob(os.path.join(root, "contract/examples/*.json")):
    compact = json.dumps(json.load(open(p)), separators=(",", ":")).encode()
    token = base64.urlsafe_b64encode(compact).rstrip(b"=").decode()
    put("cmdline", f"mem=64M ubd0r=/img/root.img root=/dev/ubda ro hostcontract={token} hostcontract_dev=/dev/ubdc con1=fd:3 -- x")
put("cmdline", 'quiet "hostcontract=e30" hostcontract= hostcontract_dev="/dev/ubd b"')

ip_values = set()
for p in sorted(glob.glob(os.path.join(root, "contract/src/ipconfig/*.rs"))):
    ip_values |= set(re.findall(r'parse\("([^"]*)"\)', open(p, encoding="utf-8").read()))
ip_values |= {"192.0.2.10::192.0.2.1:255.255.255.0:dns1:vec0:off:192.0.2.53:192.0.2.54:192.0.2.123",
              "dhcp", "off", "", "10.0.0.2:10.0.0.1:10.0.0.1:255.0.0.0:host.example.net:eth0:none",
              "dhcp,01,00:11:22:33:44:55"}
for v in sorted(ip_values):
    put("ipconfig", v)

manifests = []
for p in sorted(glob.glob(os.path.join(root, "build-image/recipes/*.json"))):
    if p.endswith(".lock.json"):  # a recipe's lock, not a recipe
        continue
    text = open(p, "rb").read()
    put("recipe", text)
    manifests.append(json.dumps(json.load(open(p))["manifest"]).encode())
# The network policy's spec fields (egress and reach), over the web example.
web = json.load(open(os.path.join(root, "examples/web.json")))
web["network"]["egress"] = [{"to": "198.51.100.0/24", "protocol": "tcp", "port": 443},
                            {"to": "2001:db8::1", "protocol": "udp", "port": 123}]
web["network"]["reach"] = "open-outbound"
specs = [json.dumps(web).encode()]
for p in sorted(glob.glob(os.path.join(root, "examples/*.json"))):
    specs.append(open(p, "rb").read())
for spec in specs:
    put("spec_merge", spec)
    for m in manifests:
        put("spec_merge", spec + b"\0" + m)

# uml-runc's bundles: a config.json as podman writes it, a foreign image's and each of our
# images' (its manifest as the image annotation podman copies into the bundle).
bundle = {
    "ociVersion": "1.0.2-dev",
    "process": {"terminal": False, "user": {"uid": 0, "gid": 0},
                "args": ["sh", "-c", "exit 7"],
                "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                        "TERM=xterm", "container=podman", "HOSTNAME=0123456789ab"],
                "cwd": "/",
                "capabilities": {"bounding": ["CAP_CHOWN", "CAP_NET_BIND_SERVICE", "CAP_SETUID"],
                                 "effective": ["CAP_CHOWN", "CAP_NET_BIND_SERVICE", "CAP_SETUID"]},
                "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1048576, "soft": 1048576}]},
    "root": {"path": "/var/lib/containers/storage/overlay/x/merged"},
    "hostname": "0123456789ab",
    "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"},
               {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "size=65536k"]},
               {"destination": "/etc/hosts", "type": "bind", "source": "/run/x/hosts", "options": ["bind", "rprivate"]},
               {"destination": "/run/.containerenv", "type": "bind", "source": "/run/x/.containerenv", "options": ["bind"]},
               {"destination": "/var/cache/app", "type": "tmpfs", "source": "tmpfs", "options": ["size=8m", "mode=1777"]}],
    "annotations": {"io.podman.annotations.autoremove": "FALSE", "org.opencontainers.image.stopSignal": "15"},
    "linux": {"namespaces": [{"type": "network", "path": "/run/netns/netns-x"}, {"type": "pid"}],
              "resources": {"memory": {"limit": 67108864}}},
}
put("bundle", json.dumps(bundle).encode())
# What the OCI runtime spec adds: hooks, sysctls, the OOM score, a network namespace without
# a path (loopback only), the root as the bundle itself.
spec = json.loads(json.dumps(bundle))
spec["root"] = {"path": "."}
spec["process"].update({"noNewPrivileges": True, "oomScoreAdj": -500})
spec["linux"]["namespaces"] = [{"type": "network"}, {"type": "mount"}]
spec["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1"}
hook = {"path": "/bin/sh", "args": ["sh", "-c", "cat"], "env": ["A=1"], "timeout": 5}
spec["hooks"] = {"prestart": [hook], "createRuntime": [hook], "poststart": [hook], "poststop": [hook]}
put("bundle", json.dumps(spec).encode())
for m in manifests:
    own = json.loads(json.dumps(bundle))
    own["annotations"]["org.host-contract.manifest.v1"] = m.decode()
    own["process"]["args"] = json.loads(m)["service"]["argv"]
    put("bundle", json.dumps(own).encode())

for line in [
    '{"event":"contract_loaded","ts_us":1,"boot_us":2,"init_us":3,"hostname":"dns1","service":"dnsmasq","sources":["kernel command line (hostcontract=)"],"network":"contract"}',
    '{"event":"service_started","ts_us":1,"boot_us":2,"init_us":3,"pid":42}',
    '{"event":"ready","ts_us":1,"boot_us":2,"init_us":3,"pid":42,"after_ms":12}',
    '{"event":"fatal","ts_us":1,"boot_us":2,"init_us":3,"field":"files","reason":"files: 20000 files"}',
    '{"event":"power_off","ts_us":1,"boot_us":2,"init_us":3,"reason":"fatal","field":null}\n{"event":"exited","code":7,"signal":null}',
    'guest-init: starting\n{"event":"disk_mounted","device":"/dev/ubdb","mount_point":"/data","formatted":true,"checked":false}',
    '{"event":"heartbeat","ts_us":1,"boot_us":2,"init_us":3,"restarts":4}',
    '{"event":"warning","ts_us":1,"boot_us":2,"init_us":3,"reason":"236 log lines dropped while the console was blocked (236 in all)"}',
    '{"event":"liveness_failed","ts_us":1,"boot_us":2,"init_us":3,"pid":42,"check":"exec /bin/test -e /tmp/alive","error":"exited with code 1","failures":2,"threshold":2}',
]:
    put("status", line)

# OCI layers: files, a directory, links, whiteouts and an opaque directory (fixed times and
# owners, so the seeds are the same each run).
def layer(items):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as t:
        for name, kind, data in items:
            i = tarfile.TarInfo(name)
            i.mtime, i.uid, i.gid, i.mode = 1, 0, 0, 0o644
            if kind == "dir":
                i.type, i.mode = tarfile.DIRTYPE, 0o755
            elif kind == "sym":
                i.type, i.linkname = tarfile.SYMTYPE, data
            elif kind == "hard":
                i.type, i.linkname = tarfile.LNKTYPE, data
            else:
                i.size = len(data)
            t.addfile(i, io.BytesIO(data.encode()) if kind == "file" else None)
    return buf.getvalue()

put("oci_layer", layer([("etc/", "dir", ""), ("etc/b", "file", "b"), ("etc/.wh.a", "file", ""),
                        ("bin", "sym", "usr/bin"), ("etc/c", "hard", "etc/b")]))
put("oci_layer", layer([("etc/.wh..wh..opq", "file", ""), ("etc/x", "file", "x"), ("./", "dir", "")]))
