#!/usr/bin/env python3
"""A loopback PyPI for benchmarks against peers (scripts/bench-peers.sh).

Serves generated wheels the way pypi.org does, enough for each peer to
mirror them by its own route:
- /simple/ and /simple/<name>/ in HTML and PEP 691 JSON (Accept header),
  with `_last-serial`, `X-PyPI-Last-Serial` and an ETag (conditional
  requests answer 304): airlock, pip;
- /pypi/<name>/json, PyPI's JSON API: bandersnatch;
- POST /pypi, the XML-RPC changelog (`changelog_last_serial`,
  `changelog_since_serial`, `list_packages_with_serial`): airlock's and
  bandersnatch's incremental runs;
- /packages/<hh>/<filename>: the files.

Every answer waits --delay-ms first (a simulated round trip; the waits
overlap, like a real network's, and cost no CPU). Files are served from
memory, so the server's own cost per request stays small.
--no-serials answers 404 on the XML-RPC API and leaves serials out of
pages, like a plain static index. GET /_requests answers the number of
requests since it was last asked (it is not counted itself).

usage: upstream.py --root DIR --port-file F [--delay-ms N] [--no-serials]
       upstream.py --generate DIR --projects P --versions V
"""
import argparse
import asyncio
import hashlib
import html
import io
import json
import os
import signal
import sys
import zipfile
from xmlrpc.server import SimpleXMLRPCDispatcher


def wheel(name, version):
    """A minimal valid pure-Python wheel (pip reads its METADATA)."""
    dist = f"{name.replace('-', '_')}-{version}"
    files = {
        f"{name.replace('-', '_')}/__init__.py": f"VERSION = {version!r}\n",
        f"{dist}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist}.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: bench\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "".join(f"{p},,\n" for p in files) + f"{dist}.dist-info/RECORD,,\n"
    files[f"{dist}.dist-info/RECORD"] = record
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for path, text in files.items():
            info = zipfile.ZipInfo(path, date_time=(2024, 1, 1, 0, 0, 0))
            z.writestr(info, text)
    return f"{dist}-py3-none-any.whl", buf.getvalue()


def generate(root, projects, versions):
    """Write the files and an index.json describing every project."""
    index = {}
    serial = 0
    os.makedirs(os.path.join(root, "packages"), exist_ok=True)
    for p in range(projects):
        name = f"bench-{p:04d}"
        files = []
        for v in range(versions):
            version = f"1.{v}"
            filename, body = wheel(name, version)
            sha = hashlib.sha256(body).hexdigest()
            path = f"packages/{sha[:2]}/{filename}"
            os.makedirs(os.path.join(root, os.path.dirname(path)), exist_ok=True)
            with open(os.path.join(root, path), "wb") as f:
                f.write(body)
            serial += 1
            files.append({"filename": filename, "version": version, "path": path, "sha256": sha,
                          "size": len(body), "serial": serial})
        index[name] = files
    with open(os.path.join(root, "index.json"), "w") as f:
        json.dump(index, f)


class Index:
    def __init__(self, root, serials):
        with open(os.path.join(root, "index.json")) as f:
            self.projects = json.load(f)
        self.root = root
        self.serials = serials
        self.last = max((f["serial"] for fs in self.projects.values() for f in fs), default=0)
        self.requests = 0

    def serial(self, name):
        return max(f["serial"] for f in self.projects[name])

    def changelog(self, since):
        return sorted(([n, f["version"], 0, "add file", f["serial"]]
                       for n, fs in self.projects.items() for f in fs if f["serial"] > since),
                      key=lambda c: c[4])


def router(index, base):
    """(method, path, headers, body) -> (status, content type, body, headers)."""
    rpc = SimpleXMLRPCDispatcher(allow_none=True, encoding="utf-8")
    rpc.register_function(lambda: index.last, "changelog_last_serial")
    rpc.register_function(lambda since: index.changelog(since), "changelog_since_serial")
    rpc.register_function(lambda: {n: index.serial(n) for n in index.projects}, "list_packages_with_serial")
    files = {}
    for fs in index.projects.values():
        for f in fs:
            with open(os.path.join(index.root, f["path"]), "rb") as fh:
                files["/" + f["path"]] = fh.read()

    def project_page(name, json_wanted):
        fs = index.projects[name]
        headers = [("X-PyPI-Last-Serial", str(index.serial(name)))] if index.serials else []
        if json_wanted:
            meta = {"api-version": "1.1"}
            if index.serials:
                meta["_last-serial"] = index.serial(name)
            body = json.dumps({
                "meta": meta, "name": name, "versions": [f["version"] for f in fs],
                "files": [{"filename": f["filename"], "url": f"{base}/{f['path']}",
                           "hashes": {"sha256": f["sha256"]}, "size": f["size"],
                           "upload-time": "2024-01-01T00:00:00Z"} for f in fs]}).encode()
            return 200, "application/vnd.pypi.simple.v1+json", body, headers
        links = "".join(f'<a href="{base}/{f["path"]}#sha256={f["sha256"]}">{html.escape(f["filename"])}</a>\n'
                        for f in fs)
        return 200, "text/html", f"<!DOCTYPE html><html><body>\n{links}</body></html>\n".encode(), headers

    def json_api(name):
        fs = index.projects[name]
        serial = index.serial(name)
        releases = {}
        for f in fs:
            releases.setdefault(f["version"], []).append({
                "filename": f["filename"], "url": f"{base}/{f['path']}", "digests": {"sha256": f["sha256"]},
                "size": f["size"], "upload_time_iso_8601": "2024-01-01T00:00:00.000000Z",
                "packagetype": "bdist_wheel", "requires_python": None, "yanked": False})
        body = json.dumps({"info": {"name": name, "version": fs[-1]["version"]},
                           "last_serial": serial, "releases": releases, "urls": releases[fs[-1]["version"]]})
        return 200, "application/json", body.encode(), [("X-PyPI-Last-Serial", str(serial))]

    def route(method, path, headers, body):
        path = path.split("?")[0]
        if method == "POST":
            if path.rstrip("/") != "/pypi" or not index.serials:
                return 404, "text/plain", b"", []
            return 200, "text/xml", rpc._marshaled_dispatch(body), []
        if path in files:
            return 200, "application/octet-stream", files[path], []
        parts = [p for p in path.split("/") if p]
        json_wanted = "application/vnd.pypi.simple.v1+json" in headers.get("accept", "")
        if parts == ["simple"]:
            serial_headers = [("X-PyPI-Last-Serial", str(index.last))] if index.serials else []
            if json_wanted:
                projects = [dict({"name": n}, **({"_last-serial": index.serial(n)} if index.serials else {}))
                            for n in index.projects]
                meta = {"api-version": "1.1"}
                if index.serials:
                    meta["_last-serial"] = index.last
                body = json.dumps({"meta": meta, "projects": projects}).encode()
                return 200, "application/vnd.pypi.simple.v1+json", body, serial_headers
            links = "".join(f'<a href="{n}/">{n}</a>\n' for n in index.projects)
            return 200, "text/html", f"<!DOCTYPE html><html><body>\n{links}</body></html>\n".encode(), serial_headers
        if len(parts) == 2 and parts[0] == "simple" and parts[1] in index.projects:
            return project_page(parts[1], json_wanted)
        if len(parts) == 3 and parts[0] == "pypi" and parts[2] == "json" and parts[1] in index.projects:
            return json_api(parts[1])
        return 404, "text/plain", b"", []

    return route


class Http(asyncio.Protocol):
    """HTTP/1.1 with keep-alive, by hand: the standard library's server
    parses headers through the email package and costs more CPU per
    request than the clients it is timing."""

    def __init__(self, index, route, delay):
        self.index, self.route, self.delay = index, route, delay
        self.buf = b""
        self.queue = []  # answers in request order (pipelining-safe)

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.buf += data
        while True:
            head_end = self.buf.find(b"\r\n\r\n")
            if head_end < 0:
                return
            lines = self.buf[:head_end].decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
            length = int(headers.get("content-length", 0))
            if len(self.buf) < head_end + 4 + length:
                return
            body = self.buf[head_end + 4:head_end + 4 + length]
            self.buf = self.buf[head_end + 4 + length:]
            self.request(method, path, headers, body)

    def request(self, method, path, headers, body):
        if path == "/_requests":  # the bench's counter: not counted, not delayed, reset
            n, self.index.requests = self.index.requests, 0
            answer = self.encode(method, 200, "text/plain", f"{n}\n".encode(), [], headers)
            return self.transport.write(answer)
        self.index.requests += 1
        slot = [None]
        self.queue.append(slot)
        answer = self.encode(method, *self.route(method, path, headers, body), headers)

        def send():
            slot[0] = answer
            while self.queue and self.queue[0][0] is not None:
                if not self.transport.is_closing():
                    self.transport.write(self.queue.pop(0)[0])
                else:
                    self.queue.pop(0)
        if self.delay:
            asyncio.get_running_loop().call_later(self.delay, send)
        else:
            send()

    @staticmethod
    def encode(method, status, ctype, body, extra, headers):
        etag = '"%s"' % hashlib.sha256(body).hexdigest()[:16]
        if status == 200 and headers.get("if-none-match") == etag:
            status, body = 304, b""
        reason = {200: "OK", 304: "Not Modified", 404: "Not Found"}[status]
        head = [f"HTTP/1.1 {status} {reason}", f"Content-Type: {ctype}", f"Content-Length: {len(body)}",
                f"ETag: {etag}"] + [f"{k}: {v}" for k, v in extra]
        out = ("\r\n".join(head) + "\r\n\r\n").encode()
        return out if method == "HEAD" else out + body


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--generate")
    ap.add_argument("--projects", type=int, default=300)
    ap.add_argument("--versions", type=int, default=3)
    ap.add_argument("--root")
    ap.add_argument("--port-file")
    ap.add_argument("--delay-ms", type=float, default=0)
    ap.add_argument("--no-serials", action="store_true")
    a = ap.parse_args()
    if a.generate:
        return generate(a.generate, a.projects, a.versions)
    index = Index(a.root, not a.no_serials)
    asyncio.run(serve(a, index))


async def serve(a, index):
    loop = asyncio.get_running_loop()
    holder = {}
    server = await loop.create_server(lambda: Http(index, holder["route"], a.delay_ms / 1000),
                                      "127.0.0.1", 0, backlog=1024)
    port = server.sockets[0].getsockname()[1]
    holder["route"] = router(index, f"http://127.0.0.1:{port}")
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: os._exit(0))
    with open(a.port_file + ".tmp", "w") as f:
        f.write(str(port))
    os.rename(a.port_file + ".tmp", a.port_file)
    await server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
