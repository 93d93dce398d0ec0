"""A small S3 server for the answers MinIO will not give (path-style
ListObjectsV2 and GET; no signature check).  Everything else the tests do
with S3 goes to the real MinIO of the stack.

Hostile answers: objects may hold any bytes under any key (keys are str
with surrogateescape, so a key may be bytes that are not UTF-8) and any
ETag; `listing` = "endless" answers every page as truncated with a new
token, "repeat" with the same token; GETs of keys in `hang` never answer,
nor do listings while `hang_listing` is set.
Every request path is recorded.  Listens on 127.0.0.1 only, on a port the
OS picks.
"""
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote_to_bytes, urlparse
from xml.sax.saxutils import escape


def key_bytes(key):
    return key.encode("utf-8", "surrogateescape")


class FakeS3:
    def __init__(self):
        self.objects = {}     # (bucket, key) -> (body, etag)
        self.listing = None   # None, "endless" or "repeat"
        self.hang = set()     # keys whose GET never answers
        self.hang_listing = False   # listings never answer
        self.paths = []       # every request's raw path
        self.lock = threading.Lock()
        self._closing = threading.Event()

    def put(self, bucket, key, body, etag=None):
        self.objects[(bucket, key)] = (body, etag or f"etag-{len(self.objects)}")

    def __enter__(self):
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._http.daemon_threads = True
        threading.Thread(target=self._http.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self._closing.set()
        self._http.shutdown()

    @property
    def url(self):
        return f"http://127.0.0.1:{self._http.server_address[1]}"

    # --- answers ---------------------------------------------------------------

    def _list(self, bucket, q):
        prefix = q.get("prefix", [""])[0]
        delim = q.get("delimiter", [None])[0]
        after = q.get("continuation-token", q.get("start-after", [""]))[0]
        if self.listing:
            n = int(q.get("continuation-token", ["0"])[0] or 0) + 1 if self.listing == "endless" else 1
            body = "".join(f"<Contents><Key>junk/{n}-{i}</Key><ETag>x</ETag><Size>1</Size></Contents>"
                           for i in range(10))
            return (f"<ListBucketResult><IsTruncated>true</IsTruncated>{body}"
                    f"<NextContinuationToken>{n}</NextContinuationToken></ListBucketResult>").encode()
        keys = sorted((k for (b, k) in self.objects if b == bucket and k.startswith(prefix)), key=key_bytes)
        keys = [k for k in keys if key_bytes(k) > key_bytes(after)]
        contents, folders = [], []
        for k in keys:
            rest = k[len(prefix):]
            if delim and delim in rest:
                folder = prefix + rest.split(delim)[0] + delim
                if folder not in folders:
                    folders.append(folder)
            else:
                body, etag = self.objects[(bucket, k)]
                contents.append(k)
        page = contents[:1000]
        out = [b"<ListBucketResult><IsTruncated>false</IsTruncated>"]
        for k in page:
            body, etag = self.objects[(bucket, k)]
            out.append(b"<Contents><Key>" + escape(k).encode("utf-8", "surrogateescape") +
                       f"</Key><ETag>&quot;{etag}&quot;</ETag><Size>{len(body)}</Size></Contents>".encode())
        for f in folders:
            out.append(b"<CommonPrefixes><Prefix>" + escape(f).encode("utf-8", "surrogateescape") +
                       b"</Prefix></CommonPrefixes>")
        out.append(b"</ListBucketResult>")
        return b"".join(out)

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                with fake.lock:
                    fake.paths.append(self.path)
                url = urlparse(self.path)
                parts = unquote_to_bytes(url.path).decode("utf-8", "surrogateescape").lstrip("/").split("/", 1)
                bucket, key = parts[0], parts[1] if len(parts) > 1 else ""
                q = parse_qs(url.query)
                if not key and "list-type" in q:
                    if fake.hang_listing:
                        fake._closing.wait(120)
                        return
                    return self._send(200, fake._list(bucket, q), "application/xml")
                if key in fake.hang:
                    fake._closing.wait(120)
                    return
                if (bucket, key) not in fake.objects:
                    return self._send(404, b"<Error><Code>NoSuchKey</Code></Error>", "application/xml")
                body, etag = fake.objects[(bucket, key)]
                self._send(200, body, "application/octet-stream", etag)

            def do_PUT(self):
                self._send(200, b"", "text/plain")

            def _send(self, status, body, ctype, etag=None):
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                if etag:
                    self.send_header("ETag", f'"{etag}"')
                self.end_headers()
                try:
                    self.wfile.write(body)
                except OSError:
                    pass

            def log_message(self, *args):
                pass

        return Handler
