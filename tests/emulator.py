#!/usr/bin/env python3
"""Emulator of the Edge Impulse ingestion service, for ingestfs tests.

A local HTTP/1.1 server that speaks the API described in the project's
doc/internals.md, "The service" (``POST /api/<category>/files`` and the legacy
``POST /api/<category>/data``), records what it stores, and injects faults
on request.  Python 3.11 standard
library only.  Request bodies are streamed: at most one read chunk (64 KiB)
plus a small look-ahead is held in memory, and every file is hashed while it
is read, so 10,000-file benchmarks are cheap.  The one exception is a
.labels part, kept whole (up to 16 MiB each) to be parsed.

Usage:
    emulator.py [OPTIONS]

Options:
    --host HOST                  address to listen on (default 127.0.0.1;
                                 an address with ':' listens on IPv6)
    --port PORT                  TCP port (default 0: an ephemeral port)
    --port-file PATH             once listening, write the bound port and a
                                 newline to PATH (atomically, via rename)
    --api-key KEY                an accepted x-api-key; repeat for several
                                 (default ei_0123456789abcdef)
    --log PATH                   JSON Lines, one line per stored sample:
                                 request, category, label, filename (part
                                 filename as received, decoded), name (stored
                                 name), size, sha256, sample_id, headers (every
                                 x-* request header but x-api-key, names lower
                                 case), annotation (part filename of the
                                 first accepted .labels part of the same
                                 request, or null), bounding_boxes,
                                 structured_labels, label_map (see
                                 "Annotations" below).  Flushed per line.  An
                                 existing log is loaded at start, so a
                                 restarted emulator still refuses duplicates
                                 of what it stored before.
    --requests-log PATH          JSON Lines, one line per request on /api:
                                 request, method, path, status (null when the
                                 connection was dropped), files (file parts
                                 received), fault (null or the injected
                                 fault), bytes (body length, after
                                 de-chunking), labels_parts (one
                                 {"filename", "type", "keys"} per .labels
                                 part, see "Annotations"; [] when none),
                                 samples (file parts that are not .labels;
                                 on /data 1, or 0 for a .labels name, and
                                 labels_parts is always []).  files,
                                 samples and labels_parts describe only a
                                 body received whole: they are 0 and [] on
                                 a 401, a 404, a fail, drop or rate_limit
                                 fault, a bad x-label, a malformed
                                 multipart body or a cut-off body.
    --store-dir DIR              also keep each stored file as DIR/<sample_id>
    --max-file-size BYTES        larger files fail "File too large"
                                 (default 104857600)
    --seed N                     seed of the fault generator (default 1)
    --dialect official|legacy    shape of /files replies (default official;
                                 see "Dialects")
    --tls-cert PEM --tls-key PEM serve HTTPS instead of HTTP
    --fail-rate P                reply 500 without storing
    --fail-after-store-rate P    store everything, then reply 500
    --drop-rate P                close the connection without a reply and
                                 without storing
    --drop-after-store-rate P    store, then close without a reply
    --rate-limit-rate P          reply 429 with Retry-After, without storing
    --retry-after SECONDS        value of Retry-After on a 429 (default 1)
    --delay-ms N                 sleep N ms before every /api reply (or
                                 drop), counted from when the whole request
                                 body has been read: a service slow to
                                 answer once the client finished sending
    --stall-ms N                 wait N ms after the request headers before
                                 reading the body (and before 100 Continue)
    --idle-timeout SECONDS       close a keep-alive connection idle (or a
                                 body stalled) this long (default 0: never)
    -v, --verbose                log every HTTP request on stderr

Both logs are appended to (a restarted emulator continues them; request and
sample numbers start again at 1 in each run and after /_reset).

Fault rates are probabilities 0..1.  Every authenticated /api request takes
one draw per fault, always in the order fail, fail_after_store, drop,
drop_after_store, rate_limit; the first draw below its rate is the request's
only fault.  Faults are drawn after the API key check, so a 401 is never
masked.  A body is always read to the end before a reply or a drop, so the
client has finished sending and a kept-alive connection stays in sync.

Dialects (of POST /api/<category>/files replies; /data has only one):
    official (default), as the real service answers and its official
    clients read it (edge-impulse-cli cli-common/make-image.ts, the Python
    SDK).  Sample parts are the file parts that are not .labels files;
    each gets exactly one entry in "files", in request order, and .labels
    parts get none:
        stored:   {"success": true, "fileName": NAME, "sampleId": N,
                   "projectId": 1}
        refused:  {"success": false, "error": MESSAGE}
    At least one sample stored: 200 {"success": true, "files": [...]}.
    None stored: 400 {"success": false, "error": <first sample's error>},
    without "files".  Only .labels parts: 400 "No samples uploaded".
    A .labels part over 16 MiB fails the request: 400 "Labels file too
    large"; one that is not a valid labels file (see "Annotations") fails
    it with 400 "Invalid labels file <part filename>: <why>".  Nothing is
    stored then.
    legacy, the replies of earlier versions of this emulator, byte for
    byte.  Every file part, .labels included, gets an entry:
        stored sample:  {"success": true, "fileName": NAME, "sampleId": N,
                         "projectId": 1}
        stored .labels: {"success": true, "fileName": NAME}
        refused:        {"success": false, "fileName": <part filename>,
                         "error": MESSAGE}
    Any refused file: 400 {"success": false, "error": <first error>,
    "files": [...]}, though the others were stored; else 200
    {"success": true, "files": [...]}.  A .labels part is checked like any
    file (type, size against --max-file-size, empty) and its content never
    fails the request: an invalid or over-16-MiB one just gives no values.
    In both, NAME is the part filename without its last extension, plus
    "." and an 8-hex-digit date id under x-add-date-id; whole-request
    errors ({"success": false, "error": ...} without "files": bad
    multipart, no files, more than 1000 files, bad x-label) are the same.

Annotations (.labels parts of /files, in both dialects):
    A .labels part is parsed as JSON.  Recognised (version must be 1):
        {"version": 1, "type": "bounding-box-labels",
         "boundingBoxes": {SAMPLE: [{"label": "car", "x": 1, "y": 2,
                                     "width": 3, "height": 4}, ...]}}
        {"version": 1, "type": "structured-labels",
         "structuredLabels": {SAMPLE: [{"label": "noise", "startIndex": 0,
                                        "endIndex": 99}, ...]}}
        {"version": 1, "type": "label-map-labels",
         "labels": {SAMPLE: {"k": "v"}}}
    where SAMPLE is a sample's part filename.  Invalid: not JSON, not an
    object, another version or type, the map not an object, or a value
    of the wrong shape (boxes need a string label and numbers x, y, width,
    height; ranges a string label and whole startIndex, endIndex; a label
    map value must be an object).  Every stored sample record of the
    request gets bounding_boxes (the list), structured_labels (the list)
    and label_map (the object), each looked up by the sample's part
    filename exactly in the valid .labels parts of that same request (the
    first part naming it wins), else null.  In the requests log, each
    .labels part is {"filename": <part filename>, "type": <its "type" if
    a string, else null>, "keys": [<the names its map lists, in order>]},
    described even when invalid ("keys" is [] unless the type is known and
    its map an object).

Control endpoints (no authentication, not counted as /api requests):
    POST /_control   JSON object setting any of api_keys (list), fail_rate,
                     fail_after_store_rate, drop_rate, drop_after_store_rate,
                     rate_limit_rate, retry_after, delay_ms, stall_ms,
                     dialect ("official" or "legacy"), hold (while true,
                     /api requests block before doing anything),
                     reply_status + reply_body + reply_repeat +
                     reply_content_type (when reply_status is not 0: after
                     storing, answer with that status and the body
                     repeated, of that Content-Type, default
                     "application/json": a broken or hostile service),
                     trickle_ms (send /api replies one byte at a time, this
                     many ms apart); replies {"ok": true}, or 400 on an
                     unknown key or a bad value (nothing is changed then).
    GET  /_samples   JSON list of the stored sample records (as in --log).
    GET  /_stats     {"requests": N, "samples": N, "files_received": N}:
                     /api requests, stored samples, and file parts received
                     whole (accepted or not; .labels included).
    POST /_reset     forget samples, hashes and counters, reseed the fault
                     generator; the log files are left as they are.

Choices where doc/internals.md is silent:
    - category "split" is recorded as "split" (no training/testing split);
    - an empty x-label counts as absent (JavaScript truthiness);
    - x-file-name (/data) is taken as UTF-8, not percent-decoded;
    - a part named "data" without a filename is a plain form field, ignored;
    - a .labels part is never stored as a sample nor de-duplicated, and
      its annotations apply only to samples of the same request; in the
      official dialect --max-file-size does not apply to it (16 MiB does);
    - "Labels file too large" and "Invalid labels file" (official) come
      after the no-files and too-many-files checks and before "No samples
      uploaded"; the first bad .labels part in request order is named;
    - /data replies 400 and 421 as text/plain; 401, 404, 429 and 500 are
      JSON everywhere;
    - a whole-request error (bad multipart, no files, >1000 files, bad
      label) stores nothing; a request cut off mid-body stores nothing.

SIGTERM and SIGINT stop the server cleanly (held requests are released).
"""

import argparse
import dataclasses
import hashlib
import json
import os
import posixpath
import random
import re
import signal
import socket
import socketserver
import sys
import tempfile
import threading
import time
import unicodedata
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DEFAULT_API_KEY = "ei_0123456789abcdef"
CATEGORIES = ("training", "testing", "anomaly", "validation",
              "post-processing", "split")
SUPPORTED_EXTENSIONS = frozenset((
    ".json", ".cbor", ".csv", ".wav", ".jpg", ".jpeg", ".png", ".mp4",
    ".avi", ".labels", ".txt", ".parquet"))
ANNOTATION_EXTENSION = ".labels"
LABELS_MAX_SIZE = 16 * 1024 * 1024   # a .labels part is buffered to parse it
DIALECTS = ("official", "legacy")
MAX_FILES_PER_REQUEST = 1000
PROJECT_ID = 1
READ_CHUNK = 64 * 1024
MAX_LINE = 8192            # chunk-size lines, trailers
MAX_PART_HEADERS = 16384   # one multipart header block
MAX_PADDING = 1024         # blanks allowed after a boundary delimiter
MAX_CONTROL_BODY = 1 << 20
FAULT_ORDER = ("fail", "fail_after_store", "drop", "drop_after_store",
               "rate_limit")
PRE_STORE_FAULTS = frozenset(("fail", "drop", "rate_limit"))


@dataclass(frozen=True)
class LabelsType:
    """One recognised kind of .labels file."""
    key: str        # the member holding {sample filename: value}
    field: str      # the sample record field that gets the value
    check: object   # value -> None, or why the value is not acceptable


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_whole(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _list_of(item_ok, what):
    def check(value):
        if not isinstance(value, list) or \
                not all(isinstance(i, dict) and item_ok(i) for i in value):
            return f"must be a list of {what}"
        return None
    return check


def _box_ok(box):
    return isinstance(box.get("label"), str) and all(
        _is_number(box.get(k)) for k in ("x", "y", "width", "height"))


def _range_ok(item):
    return isinstance(item.get("label"), str) and all(
        _is_whole(item.get(k)) for k in ("startIndex", "endIndex"))


def _object_check(value):
    return None if isinstance(value, dict) else "must be an object"


LABELS_TYPES = {
    "bounding-box-labels": LabelsType(
        "boundingBoxes", "bounding_boxes",
        _list_of(_box_ok, "boxes {label, x, y, width, height}")),
    "structured-labels": LabelsType(
        "structuredLabels", "structured_labels",
        _list_of(_range_ok, "ranges {label, startIndex, endIndex}")),
    "label-map-labels": LabelsType("labels", "label_map", _object_check),
}
LABELS_FIELDS = ("bounding_boxes", "structured_labels", "label_map")

API_PATH = re.compile(r"^/api/([^/]+)/(files|data)/?$")
# JavaScript's \s (always Unicode whitespace, even in non-unicode mode).
JS_WHITESPACE = ("\t\n\x0b\x0c\r \u00a0\u1680\u2000-\u200a"
                 "\u2028\u2029\u202f\u205f\u3000\ufeff")
# /^[a-zA-Z0-9\s-_]+/ in non-unicode mode: "\s-_" is \s, "-" and "_".
LABEL_PREFIX = re.compile("[a-zA-Z0-9_\\-" + JS_WHITESPACE + "]+")
# curl and browsers escape these three in a quoted filename.
FILENAME_ESCAPES = re.compile("%(22|0d|0a)", re.IGNORECASE)


# --------------------------------------------------------------------------
# Errors

class ClientGone(Exception):
    """The client closed or reset the connection before the body ended."""


class BadFraming(Exception):
    """The HTTP body framing is broken; the connection cannot be reused."""


class MultipartError(Exception):
    """The multipart body is malformed."""


class RequestError(Exception):
    """A whole-request failure, replied with `status` and `message`."""

    def __init__(self, status, message, plain=False):
        super().__init__(message)
        self.status = status
        self.message = message
        self.plain = plain

    def reply(self):
        return error_reply(self.status, self.message, self.plain)


# --------------------------------------------------------------------------
# Replies

@dataclass(frozen=True)
class Reply:
    status: int | None
    body: bytes = b""
    content_type: str = "application/json"
    headers: tuple = ()
    close: bool = False

    @property
    def dropped(self):
        return self.status is None


DROP = Reply(None, close=True)


def json_reply(status, obj, headers=()):
    body = json.dumps(obj, ensure_ascii=False).encode("utf-8")
    return Reply(status, body, "application/json", tuple(headers))


def error_reply(status, message, plain=False):
    if plain:
        return Reply(status, message.encode("utf-8"),
                     "text/plain; charset=utf-8")
    return json_reply(status, {"success": False, "error": message})


def fault_reply(fault, settings):
    if fault in ("drop", "drop_after_store"):
        return DROP
    if fault == "rate_limit":
        return json_reply(429,
                          {"success": False, "error": "Too many requests"},
                          [("Retry-After", str(settings.retry_after))])
    return error_reply(500, "Internal server error")


# --------------------------------------------------------------------------
# Small parsers

def header_text(value):
    """Undo http.client's latin-1 decoding when the bytes were UTF-8."""
    if value is None:
        return None
    try:
        return value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return value


def parse_params(value):
    """Split 'type; a=b; c="d\\"e"' into ('type', {'a': 'b', 'c': 'd"e'})."""
    head, _, rest = value.partition(";")
    params = {}
    i, n = 0, len(rest)
    while i < n:
        while i < n and rest[i] in " \t;":
            i += 1
        eq = i
        while eq < n and rest[eq] not in "=;":
            eq += 1
        name = rest[i:eq].strip().lower()
        if eq >= n or rest[eq] == ";":
            i = eq
            continue
        val, i = _param_value(rest, eq + 1)
        if name and name not in params:
            params[name] = val
    return head.strip().lower(), params


def _param_value(text, i):
    """Read a token or a quoted string at `i`; return (value, next index)."""
    n = len(text)
    while i < n and text[i] in " \t":
        i += 1
    if i >= n or text[i] != '"':
        end = text.find(";", i)
        end = n if end < 0 else end
        return text[i:end].strip(), end
    out, i = [], i + 1
    while i < n and text[i] != '"':
        if text[i] == "\\" and i + 1 < n:
            i += 1
        out.append(text[i])
        i += 1
    return "".join(out), i + 1


def part_filename(params):
    """The filename of a part: filename* (RFC 5987) first, else filename."""
    extended = params.get("filename*")
    if extended and extended.count("'") >= 2:
        charset, _, encoded = extended.partition("'")
        encoded = encoded.partition("'")[2]
        try:
            return urllib.parse.unquote(encoded, encoding=charset or "utf-8",
                                        errors="strict")
        except (LookupError, UnicodeDecodeError):
            pass
    name = params.get("filename")
    if name is None:
        return None
    return FILENAME_ESCAPES.sub(lambda m: chr(int(m.group(1), 16)), name)


def multipart_boundary(content_type):
    kind, params = parse_params(content_type or "")
    if kind != "multipart/form-data":
        raise RequestError(400, "Expected a multipart/form-data body")
    boundary = params.get("boundary", "")
    if not 1 <= len(boundary) <= 200:
        raise RequestError(400, "Missing or invalid multipart boundary")
    return boundary.encode("latin-1", "replace")


def has_control_character(text):
    return any(unicodedata.category(c) == "Cc" for c in text)


def split_name(filename):
    """(stored name, lower-case extension): the last extension goes."""
    root, ext = posixpath.splitext(filename)
    return root, ext.lower()


def is_labels(filename):
    return split_name(filename)[1] == ANNOTATION_EXTENSION


def infer_label(filename):
    match = LABEL_PREFIX.match(filename)
    return match.group(0) if match else None


# --------------------------------------------------------------------------
# Request bodies

class BodyReader:
    """Reads a request body framed by Content-Length or chunked coding.

    The 100 Continue interim reply, when the client asked for one, is sent
    just before the first read, so a stalled server really looks stalled.
    """

    def __init__(self, handler):
        self._rfile = handler.rfile
        self._handler = handler
        self.bytes_read = 0
        self._done = False
        self._chunk_left = 0
        encoding = (handler.headers.get("Transfer-Encoding") or "").lower()
        self._chunked = "chunked" in encoding
        self._left = 0 if self._chunked else self._content_length(handler)
        self._done = not self._chunked and self._left == 0

    @staticmethod
    def _content_length(handler):
        value = handler.headers.get("Content-Length")
        if value is None:
            return 0
        if not value.strip().isdigit():
            raise BadFraming("Invalid Content-Length")
        return int(value)

    def read(self, size=READ_CHUNK):
        """Up to `size` bytes; b"" at the end of the body."""
        if self._done:
            return b""
        self._handler.send_continue()
        data = self._read_chunked(size) if self._chunked else \
            self._read_plain(size)
        self.bytes_read += len(data)
        return data

    def drain(self):
        while self.read():
            pass

    def _raw(self, size):
        try:
            data = self._rfile.read(size)
        except OSError as exc:
            raise ClientGone(str(exc)) from exc
        if len(data) < size:
            raise ClientGone("connection closed inside the body")
        return data

    def _line(self):
        try:
            line = self._rfile.readline(MAX_LINE + 1)
        except OSError as exc:
            raise ClientGone(str(exc)) from exc
        if not line.endswith(b"\n"):
            if len(line) > MAX_LINE:
                raise BadFraming("Chunked body line too long")
            raise ClientGone("connection closed inside the body")
        return line

    def _read_plain(self, size):
        data = self._raw(min(size, self._left))
        self._left -= len(data)
        self._done = self._left == 0
        return data

    def _read_chunked(self, size):
        if self._chunk_left == 0:
            self._chunk_left = self._next_chunk_size()
            if self._chunk_left == 0:
                self._skip_trailers()
                self._done = True
                return b""
        data = self._raw(min(size, self._chunk_left))
        self._chunk_left -= len(data)
        if self._chunk_left == 0 and self._raw(2) != b"\r\n":
            raise BadFraming("Chunk not followed by CRLF")
        return data

    def _next_chunk_size(self):
        text = self._line().split(b";", 1)[0].strip()
        try:
            return int(text, 16)
        except ValueError:
            raise BadFraming("Invalid chunk size") from None

    def _skip_trailers(self):
        while self._line().strip():
            pass


# --------------------------------------------------------------------------
# Multipart (RFC 2046 section 5.1, RFC 7578)

_MORE = object()      # cannot tell yet: need more bytes
_NOT = object()       # looked like a delimiter, is not one


class MultipartReader:
    """Streams the parts of a multipart body.

    Iterating yields (headers, chunks) per part: `headers` maps lower-case
    names to values, `chunks` yields the part's content piece by piece and
    must be consumed (or abandoned) before the next part is read.
    """

    def __init__(self, read, boundary):
        self._read = read
        self._delimiter = b"\r\n--" + boundary
        # A virtual CRLF lets the first delimiter open the body.
        self._buf = bytearray(b"\r\n")
        self._eof = False
        self._closed = False

    def __iter__(self):
        self._skip_preamble()
        while not self._closed:
            headers = self._read_headers()
            chunks = self._part_chunks()
            yield headers, chunks
            for _ in chunks:
                pass

    def _fill(self):
        if self._eof:
            return False
        data = self._read(READ_CHUNK)
        if not data:
            self._eof = True
            return False
        self._buf += data
        return True

    def _skip_preamble(self):
        while True:
            index, found = self._scan()
            if index is not None:
                self._consume_delimiter(found)
                return
            del self._buf[:found]
            if not self._fill():
                raise MultipartError("boundary not found")

    def _read_headers(self):
        # The buffer starts with the CRLF that ended the delimiter line.
        while True:
            end = self._buf.find(b"\r\n\r\n")
            if end >= 0:
                block = bytes(self._buf[2:end])
                del self._buf[:end + 4]
                return parse_part_headers(block)
            if len(self._buf) > MAX_PART_HEADERS:
                raise MultipartError("part headers too long")
            if not self._fill():
                raise MultipartError("body ends inside part headers")

    def _part_chunks(self):
        while True:
            index, found = self._scan()
            if index is not None:
                if index:
                    yield self._buf[:index]
                self._consume_delimiter(found)
                return
            if found:
                yield self._buf[:found]
                del self._buf[:found]
            if not self._fill():
                raise MultipartError("body ends inside a part")

    def _consume_delimiter(self, found):
        kind, end = found
        del self._buf[:end]
        self._closed = kind == "close"

    def _scan(self):
        """Find a real delimiter in the buffer.

        Returns (index, (kind, end)) when found, else (None, safe) where the
        first `safe` bytes cannot hold the start of a delimiter.
        """
        buf, delimiter, start = self._buf, self._delimiter, 0
        while True:
            index = buf.find(delimiter, start)
            if index < 0:
                return None, max(start, len(buf) - len(delimiter) + 1)
            verdict = self._delimiter_tail(index + len(delimiter))
            if verdict is _MORE:
                return None, index
            if verdict is not _NOT:
                return index, verdict
            start = index + 1

    def _delimiter_tail(self, j):
        """What follows a boundary at `j`: '--', or blanks and CRLF."""
        buf, n = self._buf, len(self._buf)
        if n - j < 2:
            return _NOT if self._eof else _MORE
        if buf[j:j + 2] == b"--":
            return "close", j + 2
        k = j
        while k < n and k - j <= MAX_PADDING and buf[k] in b" \t":
            k += 1
        if k - j > MAX_PADDING:
            return _NOT
        if n - k < 2:
            return _NOT if self._eof else _MORE
        return ("next", k) if buf[k:k + 2] == b"\r\n" else _NOT


def parse_part_headers(block):
    try:
        text = block.decode("utf-8")
    except UnicodeDecodeError:
        text = block.decode("latin-1")
    headers, last = {}, None
    for line in text.split("\r\n"):
        if line[:1] in (" ", "\t") and last:
            headers[last] += " " + line.strip()
            continue
        name, colon, value = line.partition(":")
        if not colon:
            continue
        last = name.strip().lower()
        headers[last] = value.strip()
    return headers


# --------------------------------------------------------------------------
# Received files

@dataclass
class ReceivedFile:
    filename: str
    size: int
    sha256: str
    tmp_path: str | None
    content: bytes | None = None    # kept whole, when asked and not too big

    def discard(self):
        if self.tmp_path:
            try:
                os.unlink(self.tmp_path)
            except FileNotFoundError:
                pass
            self.tmp_path = None


class FileSink:
    """Hashes, counts and (with a store dir) spools one file as it arrives.

    With `keep` > 0 it also keeps the content in memory, as long as it is
    at most `keep` bytes (a .labels part, to be parsed); past that it keeps
    nothing and the received file's content is None.
    """

    def __init__(self, filename, max_size, store_dir, keep=0):
        self.filename = filename
        self._max_size = max_size
        self._size = 0
        self._hash = hashlib.sha256()
        self._file = None
        self._keep = keep
        self._content = bytearray() if keep else None
        if store_dir:
            fd, self._path = tempfile.mkstemp(prefix=".part-", dir=store_dir)
            self._file = os.fdopen(fd, "wb")

    def write(self, chunk):
        self._size += len(chunk)
        self._hash.update(chunk)
        if self._content is not None:
            if self._size > self._keep:
                self._content = None    # too big to parse: keep nothing
            else:
                self._content += chunk
        if self._file is None:
            return
        if self._size > self._max_size:
            self.abort()        # will fail "File too large": stop spooling
        else:
            self._file.write(chunk)

    def finish(self):
        path = None
        if self._file is not None:
            self._file.close()
            self._file, path = None, self._path
        content = None if self._content is None else bytes(self._content)
        return ReceivedFile(self.filename, self._size,
                            self._hash.hexdigest(), path, content)

    def abort(self):
        if self._file is not None:
            self._file.close()
            self._file = None
            os.unlink(self._path)


def receive_multipart(body, boundary, new_sink):
    """Stream the `data` file parts of a multipart body into sinks."""
    files = []
    try:
        for headers, chunks in MultipartReader(body.read, boundary):
            filename = data_part_filename(headers)
            if filename:
                files.append(receive_stream(chunks, new_sink(filename)))
    except MultipartError as exc:
        discard_all(files)
        raise RequestError(400, f"Malformed multipart body: {exc}") from None
    except BaseException:
        discard_all(files)
        raise
    return files


def data_part_filename(headers):
    _, params = parse_params(headers.get("content-disposition", ""))
    if params.get("name") != "data":
        return None
    return part_filename(params)


def receive_stream(chunks, sink):
    try:
        for chunk in chunks:
            sink.write(chunk)
    except BaseException:
        sink.abort()
        raise
    return sink.finish()


def body_chunks(body):
    while chunk := body.read():
        yield chunk


def discard_all(files):
    for received in files:
        received.discard()


# --------------------------------------------------------------------------
# Annotations (.labels parts)

@dataclass
class LabelsPart:
    """A .labels part of a /files request, parsed.

    `type` and `keys` describe it for the requests log even when it is
    invalid; `values` ({sample filename: value}) and `record_field` are set
    only when it is valid (`error` None).
    """
    filename: str
    type: str | None = None
    keys: list = field(default_factory=list)
    values: dict | None = None
    record_field: str | None = None
    error: str | None = None
    too_large: bool = False

    def log_entry(self):
        return {"filename": self.filename, "type": self.type,
                "keys": self.keys}


def parse_labels(received):
    """Parse a received .labels part (content None: over LABELS_MAX_SIZE)."""
    part = LabelsPart(received.filename)
    if received.content is None:
        part.error = f"larger than {LABELS_MAX_SIZE} bytes"
        part.too_large = True
        return part
    try:
        doc = json.loads(received.content, parse_constant=_not_json)
    except (ValueError, RecursionError) as exc:
        part.error = f"not valid JSON ({exc})"
        return part
    if not isinstance(doc, dict):
        part.error = "not a JSON object"
        return part
    kind = doc.get("type")
    part.type = kind if isinstance(kind, str) else None
    known = LABELS_TYPES.get(part.type)
    mapping = doc.get(known.key) if known else None
    if isinstance(mapping, dict):
        part.keys = list(mapping)
    part.error = labels_error(doc, known, mapping)
    if part.error is None:
        part.values, part.record_field = mapping, known.field
    return part


def _not_json(name):
    raise ValueError(f"{name} is not JSON")


def labels_error(doc, known, mapping):
    """Why a parsed .labels object is not acceptable, or None."""
    version = doc.get("version")
    if not _is_whole(version) or version != 1:
        return "version must be 1"
    if known is None:
        return "type must be one of " + ", ".join(LABELS_TYPES)
    if not isinstance(mapping, dict):
        return f"{known.key} must be an object"
    for name, value in mapping.items():
        why = known.check(value)
        if why:
            return f"{known.key}[{json.dumps(name, ensure_ascii=False)}] {why}"
    return None


@dataclass(frozen=True)
class Annotations:
    """What the .labels parts of one request say about its samples."""
    filename: str | None = None    # the records' "annotation"
    parts: tuple = ()              # the valid LabelsParts, in request order

    def fields_for(self, filename):
        """bounding_boxes, structured_labels and label_map of one sample,
        looked up by its part filename exactly; the first part naming it
        wins for each field."""
        out = dict.fromkeys(LABELS_FIELDS)
        for part in self.parts:
            if out[part.record_field] is None and filename in part.values:
                out[part.record_field] = part.values[filename]
        return out


NO_ANNOTATIONS = Annotations()


def annotations_of(parts):
    """Annotations from the accepted .labels parts of a request; only the
    valid ones give values, the first one gives the annotation name."""
    return Annotations(parts[0].filename if parts else None,
                       tuple(p for p in parts if p.error is None))


# --------------------------------------------------------------------------
# State

@dataclass(frozen=True)
class Settings:
    """Behaviour that /_control may change; replaced whole, never mutated."""
    api_keys: frozenset
    fail_rate: float = 0.0
    fail_after_store_rate: float = 0.0
    drop_rate: float = 0.0
    drop_after_store_rate: float = 0.0
    rate_limit_rate: float = 0.0
    retry_after: int = 1
    delay_ms: float = 0
    stall_ms: float = 0
    hold: bool = False
    reply_status: int = 0      # when not 0: store, then reply this instead
    reply_body: str = ""       # ... with this body
    reply_repeat: int = 1      # ... repeated this many times (huge replies)
    reply_content_type: str = "application/json"    # ... of this type
    trickle_ms: float = 0      # send replies one byte per this many ms
    dialect: str = "official"  # shape of /files replies: see DIALECTS

    def rate(self, fault):
        return getattr(self, fault + "_rate")


def validated_changes(changes):
    """Check a /_control object; return the Settings fields it sets."""
    if not isinstance(changes, dict):
        raise ValueError("expected a JSON object")
    out = {}
    for key, value in changes.items():
        out[key] = _validated_setting(key, value)
    return out


def _validated_setting(key, value):
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if key == "api_keys":
        if not isinstance(value, list) or \
                not all(isinstance(k, str) for k in value):
            raise ValueError("api_keys must be a list of strings")
        return frozenset(value)
    if key == "hold":
        if not isinstance(value, bool):
            raise ValueError("hold must be true or false")
        return value
    if key.endswith("_rate") and key in Settings.__dataclass_fields__:
        if not number or not 0 <= value <= 1:
            raise ValueError(f"{key} must be a number from 0 to 1")
        return float(value)
    if key == "retry_after":
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError("retry_after must be a whole number >= 0")
        return value
    if key in ("reply_status", "reply_repeat"):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"{key} must be a whole number >= 0")
        return value
    if key == "reply_body":
        if not isinstance(value, str):
            raise ValueError("reply_body must be a string")
        return value
    if key == "reply_content_type":
        if not isinstance(value, str) or not value or \
                not all(" " <= c <= "~" for c in value):
            raise ValueError("reply_content_type must be a non-empty "
                             "printable ASCII string")
        return value
    if key == "dialect":
        if value not in DIALECTS:
            raise ValueError("dialect must be one of " + ", ".join(DIALECTS))
        return value
    if key in ("delay_ms", "stall_ms", "trickle_ms"):
        if not number or value < 0:
            raise ValueError(f"{key} must be a number >= 0")
        return value
    raise ValueError(f"unknown setting {key!r}")


@dataclass(frozen=True)
class UploadOptions:
    """What the request headers ask of every file in it."""
    request: int
    category: str
    label_mode: str            # "given", "none" or "infer"
    label: str | None
    disallow_duplicates: bool
    add_date_id: bool
    headers: dict = field(default_factory=dict)

    def label_for(self, filename):
        if self.label_mode == "given":
            return self.label
        if self.label_mode == "none":
            return None
        return infer_label(filename)


@dataclass
class FileResult:
    filename: str
    error: str | None = None
    name: str | None = None
    sample_id: int | None = None

    def entry(self):
        """The legacy dialect's entry (.labels parts get one too)."""
        if self.error:
            return {"success": False, "fileName": self.filename,
                    "error": self.error}
        entry = {"success": True, "fileName": self.name}
        if self.sample_id is not None:
            entry.update(sampleId=self.sample_id, projectId=PROJECT_ID)
        return entry

    def official_entry(self):
        """The official dialect's entry (samples only)."""
        if self.error:
            return {"success": False, "error": self.error}
        return {"success": True, "fileName": self.name,
                "sampleId": self.sample_id, "projectId": PROJECT_ID}


class JsonLines:
    """An optional JSON Lines file; callers serialise writes.

    Appended to, so a test that restarts the emulator on the same paths
    keeps the history of the earlier run.
    """

    def __init__(self, path):
        self._file = open(path, "a", encoding="utf-8") if path else None

    def write(self, record):
        if self._file:
            self._file.write(json.dumps(record, ensure_ascii=False) + "\n")
            self._file.flush()

    def close(self):
        if self._file:
            self._file.close()


class EmulatorState:
    """Everything shared between request threads.

    Thread model: one thread per connection (ThreadingHTTPServer).
    Locking rule: the mutable attributes (those set in `_forget`, and the
    two logs) are used only with `_lock` held.  `settings` is a frozen
    object replaced whole under the lock and read without it (reading the
    reference is atomic); `max_file_size` and `store_dir` never change.
    `_held` waits on the same lock.
    """

    def __init__(self, settings, seed, max_file_size, store_dir,
                 sample_log, request_log):
        self.settings = settings
        self.max_file_size = max_file_size
        self.store_dir = store_dir
        self._seed = seed
        self._lock = threading.Lock()
        self._held = threading.Condition(self._lock)
        self._forget()
        self._load_history(sample_log)
        self._sample_log = JsonLines(sample_log)
        self._request_log = JsonLines(request_log)

    def _load_history(self, path):
        """A restarted emulator still knows what it stored, as the real
        service does: samples of an existing --log count for duplicates."""
        if not path or not os.path.exists(path):
            return
        with open(path, encoding="utf-8") as f:
            for line in f:
                try:
                    record = json.loads(line)
                    sample_id, digest = int(record["sample_id"]), str(record["sha256"])
                except (ValueError, KeyError, TypeError):
                    continue
                for name in LABELS_FIELDS:    # logs of older emulators
                    record.setdefault(name, None)
                self._samples.append(record)
                self._ids_by_hash.setdefault(digest, []).append(sample_id)
                self._next_sample_id = max(self._next_sample_id, sample_id + 1)

    def _forget(self):
        self._rng = random.Random(self._seed)
        self._requests = 0
        self._files_received = 0
        self._next_sample_id = 1
        self._samples = []
        self._ids_by_hash = {}
        self._date_ids = set()

    # Settings and control -------------------------------------------------

    def configure(self, changes):
        values = validated_changes(changes)
        with self._lock:
            self.settings = dataclasses.replace(self.settings, **values)
            self._held.notify_all()

    def release(self):
        self.configure({"hold": False})

    def accepts_key(self, key):
        return key is not None and key in self.settings.api_keys

    def wait_while_held(self):
        with self._lock:
            self._held.wait_for(lambda: not self.settings.hold)

    def draw_fault(self):
        """One draw per fault, in FAULT_ORDER; the first hit wins."""
        with self._lock:
            settings = self.settings
            draws = [self._rng.random() for _ in FAULT_ORDER]
        for fault, draw in zip(FAULT_ORDER, draws):
            if draw < settings.rate(fault):
                return fault
        return None

    def reset(self):
        with self._lock:
            self._forget()

    # Counters and records -------------------------------------------------

    def next_request(self):
        with self._lock:
            self._requests += 1
            return self._requests

    def count_received(self, count):
        with self._lock:
            self._files_received += count

    def stats(self):
        with self._lock:
            return {"requests": self._requests,
                    "samples": len(self._samples),
                    "files_received": self._files_received}

    def samples(self):
        with self._lock:
            return list(self._samples)

    def log_request(self, entry):
        with self._lock:
            self._request_log.write(entry)

    def close(self):
        with self._lock:
            self._sample_log.close()
            self._request_log.close()

    # Storing --------------------------------------------------------------

    def commit(self, files, options, annotations=NO_ANNOTATIONS):
        """Check and store the files of one request, in order.

        `annotations` come from the request's .labels parts.  Records are
        logged and visible in /_samples before this returns, hence before
        the reply is sent.
        """
        with self._lock:
            results, records = [], []
            for received in files:
                results.append(self._commit_one(received, options, records))
            for record in records:
                record["annotation"] = annotations.filename
                record.update(annotations.fields_for(record["filename"]))
                self._samples.append(record)
                self._sample_log.write(record)
        return results

    def labels_accepted(self, received):
        """Whether a .labels file passes the per-file checks (legacy)."""
        return self._static_error(received, ANNOTATION_EXTENSION) is None

    def _commit_one(self, received, options, records):
        name, ext = split_name(received.filename)
        error = self._file_error(received, ext, options)
        if error:
            return FileResult(received.filename, error)
        if ext == ANNOTATION_EXTENSION:
            return FileResult(received.filename, name=name)
        if options.add_date_id:
            name += "." + self._new_date_id()
        sample_id = self._next_sample_id
        self._next_sample_id += 1
        self._ids_by_hash.setdefault(received.sha256, []).append(sample_id)
        self._keep_file(received, sample_id)
        records.append(sample_record(received, options, name, sample_id))
        return FileResult(received.filename, name=name, sample_id=sample_id)

    def _static_error(self, received, ext):
        """The checks that do not depend on what is stored (no lock)."""
        if ext not in SUPPORTED_EXTENSIONS:
            return "Unsupported file type"
        if received.size > self.max_file_size:
            return "File too large"
        if received.size == 0:
            return "File is empty"
        return None

    def _file_error(self, received, ext, options):
        error = self._static_error(received, ext)
        if error:
            return error
        ids = self._ids_by_hash.get(received.sha256)
        if ids and options.disallow_duplicates and \
                ext != ANNOTATION_EXTENSION:
            listed = ", ".join(str(i) for i in ids)
            return f"An item with this hash already exists (ids: {listed})"
        return None

    def _new_date_id(self):
        while True:
            date_id = os.urandom(4).hex()
            if date_id not in self._date_ids:
                self._date_ids.add(date_id)
                return date_id

    def _keep_file(self, received, sample_id):
        if received.tmp_path:
            os.replace(received.tmp_path,
                       os.path.join(self.store_dir, str(sample_id)))
            received.tmp_path = None


def sample_record(received, options, name, sample_id):
    return {"request": options.request,
            "category": options.category,
            "label": options.label_for(received.filename),
            "filename": received.filename,
            "name": name,
            "size": received.size,
            "sha256": received.sha256,
            "sample_id": sample_id,
            "headers": options.headers,
            "annotation": None,
            **dict.fromkeys(LABELS_FIELDS)}


# --------------------------------------------------------------------------
# HTTP

@dataclass
class ApiCall:
    """One /api request, as the requests log describes it."""
    number: int
    method: str
    path: str
    files: int = 0
    fault: str | None = None
    samples: int = 0
    labels_parts: list = field(default_factory=list)

    def received(self, files, labels_parts=()):
        self.files = len(files)
        self.samples = sum(not is_labels(f.filename) for f in files)
        self.labels_parts = [part.log_entry() for part in labels_parts]

    def log_entry(self, status, body_bytes):
        return {"request": self.number, "method": self.method,
                "path": self.path, "status": status, "files": self.files,
                "fault": self.fault, "bytes": body_bytes,
                "labels_parts": self.labels_parts, "samples": self.samples}


def sleep_ms(ms):
    if ms > 0:
        time.sleep(ms / 1000)


class IngestionHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ingestion-emulator/1"
    disable_nagle_algorithm = True

    # Plumbing -------------------------------------------------------------

    def setup(self):
        self.timeout = self.server.idle_timeout
        super().setup()

    def parse_request(self):
        self._continue_pending = False
        return super().parse_request()

    def handle_expect_100(self):
        # Defer "100 Continue" until the body is first read (see stall_ms).
        self._continue_pending = True
        return True

    def send_continue(self):
        if self._continue_pending:
            self._continue_pending = False
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def log_message(self, format, *args):
        if self.server.verbose:
            super().log_message(format, *args)

    def do_GET(self):
        self._dispatch()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_GET

    def _dispatch(self):
        path = urllib.parse.urlsplit(self.path).path
        if path == "/api" or path.startswith("/api/"):
            self._handle_api(path)
        else:
            self._handle_control(path)

    def _send(self, reply):
        if reply.close:
            self.close_connection = True
        phrase = self.responses.get(reply.status, ("",))[0]
        lines = [f"{self.protocol_version} {reply.status} {phrase}",
                 f"Server: {self.version_string()}",
                 f"Date: {self.date_time_string()}",
                 f"Content-Type: {reply.content_type}",
                 f"Content-Length: {len(reply.body)}"]
        lines += [f"{name}: {value}" for name, value in reply.headers]
        if self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        data = head if self.command == "HEAD" else head + reply.body
        trickle = self.server.state.settings.trickle_ms
        if trickle and reply.status != 0 and not self.path.startswith("/_"):
            for i in range(len(data)):
                self.wfile.write(data[i:i + 1])
                self.wfile.flush()
                sleep_ms(trickle)
        else:
            self.wfile.write(data)
        self.log_request(reply.status)

    # Control endpoints ----------------------------------------------------

    def _handle_control(self, path):
        state = self.server.state
        try:
            body = self._small_body()
        except (ClientGone, BadFraming):
            self.close_connection = True
            return
        route = (self.command, path)
        if route == ("POST", "/_control"):
            reply = self._control(state, body)
        elif route == ("GET", "/_samples"):
            reply = json_reply(200, state.samples())
        elif route == ("GET", "/_stats"):
            reply = json_reply(200, state.stats())
        elif route == ("POST", "/_reset"):
            state.reset()
            reply = json_reply(200, {"ok": True})
        else:
            reply = error_reply(404, "Not found")
        self._send(reply)

    def _small_body(self):
        body, data = BodyReader(self), bytearray()
        while chunk := body.read():
            data += chunk
            if len(data) > MAX_CONTROL_BODY:
                raise BadFraming("control body too large")
        return bytes(data)

    @staticmethod
    def _control(state, body):
        try:
            state.configure(json.loads(body or b"{}"))
        except ValueError as exc:   # includes JSONDecodeError
            return json_reply(400, {"ok": False, "error": str(exc)})
        return json_reply(200, {"ok": True})

    # API ------------------------------------------------------------------

    def _handle_api(self, path):
        state = self.server.state
        call = ApiCall(state.next_request(), self.command, self.path)
        body = None
        try:
            body = BodyReader(self)
            reply = self._api_reply(call, body, path)
        except ClientGone:
            reply = DROP
        except BadFraming as exc:
            reply = dataclasses.replace(error_reply(400, str(exc)), close=True)
        sleep_ms(state.settings.delay_ms)
        state.log_request(call.log_entry(
            reply.status, body.bytes_read if body else 0))
        if reply.dropped:
            self.close_connection = True
        else:
            self._send(reply)

    def _api_reply(self, call, body, path):
        state = self.server.state
        state.wait_while_held()
        sleep_ms(state.settings.stall_ms)
        match = API_PATH.match(path)
        try:
            if not match or match.group(1) not in CATEGORIES or \
                    self.command != "POST":
                raise RequestError(404, "Not found")
            if not state.accepts_key(self.headers.get("x-api-key")):
                raise RequestError(401, "Invalid API key")
        except RequestError as exc:
            body.drain()
            return exc.reply()
        return self._authorised_reply(call, body, *match.groups())

    def _authorised_reply(self, call, body, category, kind):
        state = self.server.state
        call.fault = state.draw_fault()
        if call.fault in PRE_STORE_FAULTS:
            body.drain()
            return fault_reply(call.fault, state.settings)
        upload = self._upload_files if kind == "files" else self._upload_data
        try:
            reply = upload(call, body, category)
        except RequestError as exc:
            reply = exc.reply()
        body.drain()
        if call.fault:      # fail_after_store or drop_after_store
            return fault_reply(call.fault, state.settings)
        settings = state.settings
        if settings.reply_status:   # a broken service: stored, odd reply
            call.fault = "reply_override"
            return Reply(settings.reply_status,
                         (settings.reply_body * settings.reply_repeat).encode(),
                         settings.reply_content_type)
        return reply

    def _upload_options(self, call, category, plain):
        label, mode = header_text(self.headers.get("x-label")), "infer"
        if label:
            label = urllib.parse.unquote(label, errors="replace")
            mode = "given"
            if has_control_character(label):
                raise RequestError(400, "Label contains control characters",
                                   plain)
        elif "x-no-label" in self.headers:
            mode = "none"
        return UploadOptions(
            request=call.number, category=category, label_mode=mode,
            label=label if mode == "given" else None,
            disallow_duplicates="x-disallow-duplicates" in self.headers,
            add_date_id="x-add-date-id" in self.headers,
            headers=self._logged_headers())

    def _logged_headers(self):
        logged = {}
        for name, value in self.headers.items():
            name = name.lower()
            if name.startswith("x-") and name != "x-api-key":
                value = header_text(value)
                logged[name] = f"{logged[name]}, {value}" \
                    if name in logged else value
        return logged

    def _new_sink(self, filename):
        state = self.server.state
        return FileSink(filename, state.max_file_size, state.store_dir)

    def _new_part_sink(self, filename):
        """A multipart file part: .labels parts are kept to be parsed."""
        state = self.server.state
        keep = LABELS_MAX_SIZE if is_labels(filename) else 0
        return FileSink(filename, state.max_file_size, state.store_dir, keep)

    def _upload_files(self, call, body, category):
        state = self.server.state
        dialect = state.settings.dialect    # one dialect for the request
        options = self._upload_options(call, category, plain=False)
        boundary = multipart_boundary(self.headers.get("Content-Type"))
        files = receive_multipart(body, boundary, self._new_part_sink)
        try:
            labels = [(f, parse_labels(f)) for f in files
                      if is_labels(f.filename)]
            call.received(files, [part for _, part in labels])
            state.count_received(len(files))
            if not files:
                raise RequestError(400, "No files uploaded")
            if len(files) > MAX_FILES_PER_REQUEST:
                raise RequestError(
                    400, f"Too many files (at most {MAX_FILES_PER_REQUEST})")
            if dialect == "legacy":
                return self._commit_legacy(files, labels, options)
            return self._commit_official(files, labels, options)
        finally:
            discard_all(files)

    def _commit_legacy(self, files, labels, options):
        """Every part gets an entry; .labels content never fails a request."""
        state = self.server.state
        accepted = [part for received, part in labels
                    if state.labels_accepted(received)]
        results = state.commit(files, options, annotations_of(accepted))
        return files_reply(results)

    def _commit_official(self, files, labels, options):
        """Only samples get an entry; a bad .labels part fails the request."""
        for _, part in labels:
            if part.too_large:
                raise RequestError(400, "Labels file too large")
            if part.error:
                raise RequestError(400, f"Invalid labels file "
                                        f"{part.filename}: {part.error}")
        samples = [f for f in files if not is_labels(f.filename)]
        if not samples:
            raise RequestError(400, "No samples uploaded")
        results = self.server.state.commit(
            samples, options, annotations_of([part for _, part in labels]))
        return official_files_reply(results)

    def _upload_data(self, call, body, category):
        filename = header_text(self.headers.get("x-file-name"))
        if not filename:
            raise RequestError(421, "Missing header x-file-name", plain=True)
        options = self._upload_options(call, category, plain=True)
        received = receive_stream(body_chunks(body), self._new_sink(filename))
        call.received([received])
        self.server.state.count_received(1)
        try:
            result, = self.server.state.commit([received], options)
        finally:
            received.discard()
        if result.error:
            return error_reply(400, result.error, plain=True)
        return Reply(200, result.name.encode("utf-8"),
                     "text/plain; charset=utf-8")


def files_reply(results):
    """The legacy dialect: any refused file makes it a 400 with entries."""
    entries = [result.entry() for result in results]
    errors = [result.error for result in results if result.error]
    if errors:
        return json_reply(400, {"success": False, "error": errors[0],
                                "files": entries})
    return json_reply(200, {"success": True, "files": entries})


def official_files_reply(results):
    """The official dialect: 200 when any sample was stored, else a 400
    with the first sample's error and no entries."""
    if any(not result.error for result in results):
        return json_reply(200, {"success": True, "files": [
            result.official_entry() for result in results]})
    return json_reply(400, {"success": False, "error": results[0].error})


class EmulatorServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address, state, idle_timeout=None, verbose=False):
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.state = state
        self.idle_timeout = idle_timeout
        self.verbose = verbose
        super().__init__(address, IngestionHandler)

    def server_bind(self):
        # HTTPServer.server_bind calls getfqdn(), a DNS lookup we never need.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]


# --------------------------------------------------------------------------
# Command line

def probability(text):
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError("must be from 0 to 1")
    return value


def non_negative(kind):
    def convert(text):
        value = kind(text)
        if value < 0:
            raise argparse.ArgumentTypeError("must be >= 0")
        return value
    return convert


def add_tls_args(parser):
    parser.add_argument("--tls-cert", help="serve HTTPS with this certificate (PEM)")
    parser.add_argument("--tls-key", help="and this private key (PEM)")


def parse_args(argv):
    # The module docstring is the one reference for the options.
    parser = argparse.ArgumentParser(
        usage="%(prog)s [OPTIONS]", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--host", default="127.0.0.1")
    add("--port", type=non_negative(int), default=0)
    add("--port-file", metavar="PATH")
    add("--api-key", action="append", metavar="KEY", dest="api_keys")
    add("--log", metavar="PATH")
    add("--requests-log", metavar="PATH")
    add("--store-dir", metavar="DIR")
    add("--max-file-size", type=non_negative(int), default=104857600,
        metavar="BYTES")
    add("--seed", type=int, default=1)
    add("--dialect", choices=DIALECTS, default="official")
    for fault in FAULT_ORDER:
        add("--" + fault.replace("_", "-") + "-rate", type=probability,
            default=0.0, metavar="P")
    add("--retry-after", type=non_negative(int), default=1, metavar="SECONDS")
    add("--delay-ms", type=non_negative(float), default=0, metavar="N")
    add("--stall-ms", type=non_negative(float), default=0, metavar="N")
    add("--idle-timeout", type=non_negative(float), default=0,
        metavar="SECONDS")
    add("-v", "--verbose", action="store_true")
    add_tls_args(parser)
    return parser.parse_args(argv)


def settings_from(args):
    rates = {fault + "_rate": getattr(args, fault + "_rate")
             for fault in FAULT_ORDER}
    return Settings(api_keys=frozenset(args.api_keys or [DEFAULT_API_KEY]),
                    retry_after=args.retry_after, delay_ms=args.delay_ms,
                    stall_ms=args.stall_ms, dialect=args.dialect, **rates)


def write_port_file(path, port):
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="ascii") as out:
        out.write(f"{port}\n")
    os.replace(tmp, path)


def main(argv=None):
    args = parse_args(argv)
    if args.store_dir:
        os.makedirs(args.store_dir, exist_ok=True)
    state = EmulatorState(settings_from(args), args.seed, args.max_file_size,
                          args.store_dir, args.log, args.requests_log)
    server = EmulatorServer((args.host, args.port), state,
                            args.idle_timeout or None, args.verbose)
    if args.tls_cert:
        import ssl
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.tls_cert, args.tls_key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    thread = threading.Thread(target=server.serve_forever,
                              kwargs={"poll_interval": 0.2}, daemon=True)
    thread.start()
    port = server.server_address[1]
    if args.port_file:
        write_port_file(args.port_file, port)
    print(f"emulator: listening on {args.host} port {port}", file=sys.stderr,
          flush=True)
    while not stop.wait(0.5):
        pass
    state.release()
    server.shutdown()
    server.server_close()
    state.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
