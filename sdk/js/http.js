// Outbound HTTP for JavaScript tasks, over the raw `wasi:http` bindings:
// synchronous (it blocks on `wasi:io` pollables), so it works from the
// plain, synchronous `run` export, and every failure carries the
// `wasi:http` error code (e.g. `HTTP-request-denied` when the egress policy
// refuses the host). It needs the `task-with-http` world: start the task's
// file with the line `// world: task-with-http` (scripts/guests.sh reads it).
//
//   import * as tidemark from "../../sdk/js/tidemark.js";
//   import * as http from "../../sdk/js/http.js";
//   export const run = tidemark.task((ctx) => {
//     const rate = http.getJson("https://api.example.com/rate");
//     ...
//   });
//
// `fetch` works too, but only from an async `run` (`tidemark.task(async
// (ctx) => ...)`; a fetch from a synchronous export never completes,
// ComponentizeJS #320), and a refused request is only a `TypeError:
// NetworkError`, without its code.

import { handle } from "wasi:http/outgoing-handler@0.2.12";
import { Fields, OutgoingBody, OutgoingRequest, httpErrorCode } from "wasi:http/types@0.2.12";
import { HttpError } from "./tidemark.js";

export { HttpError };

const encoder = new TextEncoder();
const decoder = new TextDecoder();

// A stream takes at most 4096 bytes per blocking write (wasi:io).
const WRITE_CHUNK = 4096;
const READ_CHUNK = 64n * 1024n;

const METHODS = ["get", "head", "post", "put", "delete", "connect", "options", "trace", "patch"];

// A complete response: `status`, `headers` ([name, Uint8Array] pairs, names
// lower case) and `body` (a Uint8Array).
export class Response {
  constructor(status, headers, body) {
    this.status = status;
    this.headers = headers;
    this.body = body;
  }

  get ok() {
    return this.status >= 200 && this.status < 300;
  }

  header(name) {
    const n = name.toLowerCase();
    const found = this.headers.find(([k]) => k.toLowerCase() === n);
    return found === undefined ? undefined : decoder.decode(found[1]);
  }

  text() {
    return decoder.decode(this.body);
  }

  json() {
    return JSON.parse(this.text());
  }

  // This response, or an HttpError with code "status" if it is not 2xx.
  errorForStatus() {
    if (!this.ok) throw new HttpError("status", "", this.status);
    return this;
  }
}

function codeError(code) {
  const detail = code.val === undefined ? "" : JSON.stringify(code.val, (_, v) => (typeof v === "bigint" ? Number(v) : v));
  return new HttpError(code.tag, detail);
}

function dispose(...resources) {
  for (const r of resources) if (r) r[Symbol.dispose]();
}

// Sends one request and reads the whole response. `headers` is an object
// of names to values; a `body` (string or Uint8Array) gets a content-length.
// Throws HttpError when the host refuses or fails the request.
export function request(method, url, { headers = {}, body } = {}) {
  const m = /^(https?):\/\/([^/?#]+)([^#]*)/i.exec(url);
  if (!m) throw new HttpError("invalid-request", `${JSON.stringify(url)} is not an http(s) URL with a host`);
  const [, scheme, authority, rest] = m;
  const path = rest.startsWith("/") ? rest : `/${rest}`;
  const bytes = typeof body === "string" ? encoder.encode(body) : body;
  const pairs = Object.entries(headers).map(([k, v]) => [k, encoder.encode(String(v))]);
  if (bytes !== undefined && !pairs.some(([k]) => k.toLowerCase() === "content-length")) {
    pairs.push(["content-length", encoder.encode(String(bytes.length))]);
  }
  let fields;
  try {
    fields = Fields.fromList(pairs);
  } catch (e) {
    throw new HttpError("invalid-request", `headers: ${JSON.stringify(e.payload)}`);
  }
  const req = new OutgoingRequest(fields);
  const lower = method.toLowerCase();
  try {
    req.setMethod(METHODS.includes(lower) ? { tag: lower } : { tag: "other", val: method });
    req.setScheme({ tag: scheme.toLowerCase() === "https" ? "HTTPS" : "HTTP" });
    req.setAuthority(authority);
    req.setPathWithQuery(path);
  } catch (e) {
    throw new HttpError("invalid-request", `${method} ${url}`);
  }
  const outgoing = bytes === undefined ? undefined : req.body();
  let future;
  try {
    future = handle(req, undefined);
  } catch (e) {
    dispose(outgoing);
    throw codeError(e.payload);
  }
  if (outgoing !== undefined) {
    // Children go before their parents: the host traps on a parent
    // dropped or finished while a child lives.
    const stream = outgoing.write();
    try {
      for (let i = 0; i < bytes.length; i += WRITE_CHUNK) {
        stream.blockingWriteAndFlush(bytes.subarray(i, i + WRITE_CHUNK));
      }
    } catch (e) {
      // The response reports why (e.g. a body over the quota).
    }
    dispose(stream);
    try {
      OutgoingBody.finish(outgoing, undefined);
    } catch (e) {
      // Likewise.
    }
  }
  const ready = future.subscribe();
  ready.block();
  dispose(ready);
  const got = future.get();
  if (got === undefined || got.tag !== "ok") {
    dispose(future);
    throw new HttpError("internal-error", "response not ready after waiting");
  }
  if (got.val.tag !== "ok") {
    dispose(future);
    throw codeError(got.val.val);
  }
  const resp = got.val.val;
  try {
    return read(resp);
  } finally {
    dispose(resp, future);
  }
}

function read(resp) {
  const status = resp.status();
  const fields = resp.headers();
  const headers = fields.entries();
  dispose(fields);
  const incoming = resp.consume();
  const stream = incoming.stream();
  const chunks = [];
  let length = 0;
  try {
    for (;;) {
      let chunk;
      try {
        chunk = stream.blockingRead(READ_CHUNK);
      } catch (e) {
        const p = e.payload;
        if (p && p.tag === "closed") break;
        const code = p && p.tag === "last-operation-failed" ? httpErrorCode(p.val) : undefined;
        if (p && p.val) dispose(p.val);
        throw code === undefined ? new HttpError("internal-error", "reading the body") : codeError(code);
      }
      chunks.push(chunk);
      length += chunk.length;
    }
  } finally {
    dispose(stream, incoming);
  }
  const body = new Uint8Array(length);
  let at = 0;
  for (const c of chunks) {
    body.set(c, at);
    at += c.length;
  }
  return new Response(status, headers, body);
}

// `GET url`.
export function get(url, headers = {}) {
  return request("GET", url, { headers });
}

// GETs `url` (accepting JSON) and returns its body parsed; a status that is
// not 2xx is an HttpError.
export function getJson(url, headers = {}) {
  return get(url, { accept: "application/json", ...headers })
    .errorForStatus()
    .json();
}
