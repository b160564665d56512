// Tidemark's JavaScript SDK: the `tidemark:task` world (wit/task.wit) as
// plain JavaScript for componentize-js. Import it, write `run(ctx)` and
// export what `task(run)` returns:
//
//   import * as tidemark from "../../sdk/js/tidemark.js";
//   export const run = tidemark.task((ctx) => {
//     const n = [...new tidemark.Dataset("events").scanWindow(ctx.window)].length;
//     if (n === 0) throw new tidemark.Retryable("no events yet");
//     return `${n} events`;
//   });
//
// Returning a string succeeds with it as the summary; throwing Retryable,
// Fatal or HttpError fails the attempt as a task-error; anything else
// thrown is a trap. `run` may be async (return a promise): componentize-js
// then runs the event loop until it settles, which is what `fetch` needs.
// Object storage: `new Container("lake")` is the object-storage connection
// (s3 or fs) the workflow names; what an attempt writes becomes the
// window's output when the attempt succeeds.
// Outbound HTTP: see http.js.
// Instants are plain numbers of milliseconds (exact up to 2^53).

import { write } from "tidemark:task/log@0.1.0";
import { put, get, scan } from "tidemark:task/dataset@0.1.0";
import { save, load, clear } from "tidemark:task/checkpoint@0.1.0";
import {
  getData,
  writeData,
  listObjects,
  objectInfo,
  deleteObject,
  windowOutput,
} from "tidemark:task/blobstore@0.1.0";

// Matches the host's cap per scan call.
const SCAN_PAGE = 1000;

export class Retryable extends Error {}
export class Fatal extends Error {}

// A request that produced no usable response (see http.js). `code` is the
// `wasi:http` error-code's WIT name, e.g. "HTTP-request-denied" when the
// egress policy refused the host (the names the Rust and Python SDKs
// report), "invalid-request" for a URL or header refused before sending,
// or "status" for Response.errorForStatus (`status` is the HTTP status
// then). Thrown out of `run`, it fails the attempt as a task error,
// retryable when transient.
export class HttpError extends Error {
  constructor(code, detail = "", status = undefined) {
    super(status !== undefined ? `HTTP status ${status}` : detail ? `${code} (${detail})` : code);
    this.code = code;
    this.detail = detail;
    this.status = status;
  }

  // Whether the egress policy refused the request.
  get denied() {
    return this.code === "HTTP-request-denied";
  }

  // Whether a later attempt may succeed (timeouts, refused or dropped
  // connections, 429 and 5xx statuses).
  get transient() {
    if (this.status !== undefined) return this.status === 429 || this.status >= 500;
    return TRANSIENT.has(this.code);
  }
}

const TRANSIENT = new Set([
  "DNS-timeout",
  "destination-unavailable",
  "connection-refused",
  "connection-terminated",
  "connection-timeout",
  "connection-read-timeout",
  "connection-write-timeout",
  "HTTP-response-incomplete",
  "HTTP-response-timeout",
]);

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export const log = {
  trace: (m) => write("trace", String(m)),
  debug: (m) => write("debug", String(m)),
  info: (m) => write("info", String(m)),
  warn: (m) => write("warn", String(m)),
  error: (m) => write("error", String(m)),
};

export const checkpoint = {
  save: (bytes) => save(bytes),
  load: () => load(),
  clear: () => clear(),
};

export class Dataset {
  constructor(name) {
    this.name = name;
  }

  put(key, value) {
    put(this.name, key, typeof value === "string" ? encoder.encode(value) : value);
  }

  // JSON.stringify writes the compact form serde_json does, so JavaScript
  // and Rust tasks produce identical datasets.
  putJson(key, value) {
    this.put(key, JSON.stringify(value));
  }

  get(partition, key) {
    return get(this.name, BigInt(partition), key);
  }

  *scan(since, until, prefix = "") {
    let after = undefined;
    for (;;) {
      const page = scan(this.name, BigInt(since), BigInt(until), prefix, after, SCAN_PAGE);
      for (const e of page.entries) {
        yield {
          partition: Number(e.partition),
          key: e.key,
          value: e.value,
          json: () => JSON.parse(decoder.decode(e.value)),
        };
      }
      if (page.next === undefined || page.next === null) return;
      after = page.next;
    }
  }

  // The entries of the partition of `window` (whose start it is).
  scanWindow(window, prefix = "") {
    return this.scan(window.start, window.start + 1, prefix);
  }
}

// `get-data` clamps `end` to the object's size.
const U64_MAX = 18446744073709551615n;
const LIST_PAGE = 1000;

// A refused blobstore call as the Rust SDK maps it: `unavailable` may be
// retried, every other blob-error is fatal.
function blobError(e) {
  const p = e && e.payload;
  if (!p || typeof p.tag !== "string") return e;
  const message = String(p.val);
  return p.tag === "unavailable" ? new Retryable(message) : new Fatal(message);
}

function blob(call) {
  try {
    return call();
  } catch (e) {
    throw blobError(e);
  }
}

function objectMeta(m) {
  return {
    name: m.name,
    size: Number(m.size),
    modified: m.createdAt === undefined || m.createdAt === null ? undefined : Number(m.createdAt),
  };
}

// A container: a connection of kind s3 or fs that the workflow names in
// `connections`.
//
//   const lake = new tidemark.Container("lake");
//   lake.write("part-0.jsonl", '{"n":1}\n');     // this window's output
//   const input = lake.read("raw/2026-01-01.json"); // anything in the bucket
//
// What this attempt writes becomes the window's output only when the
// attempt succeeds, replacing the previous output as a whole. Refused calls
// throw Retryable (storage unavailable) or Fatal (anything else). Data is
// a Uint8Array (a string is written as UTF-8); sizes and instants are
// numbers.
export class Container {
  constructor(name) {
    this.name = name;
  }

  // Stages one object of this window's output.
  write(name, data) {
    const bytes = typeof data === "string" ? encoder.encode(data) : data;
    blob(() => writeData(this.name, name, bytes));
  }

  // The whole object.
  read(name) {
    return blob(() => getData(this.name, name, 0n, U64_MAX));
  }

  // Bytes [start, end) of an object.
  readRange(name, start, end) {
    return blob(() => getData(this.name, name, BigInt(start), BigInt(end)));
  }

  // The object's size and time; undefined if there is no such object.
  info(name) {
    try {
      return objectMeta(objectInfo(this.name, name));
    } catch (e) {
      if (e && e.payload && e.payload.tag === "not-found") return undefined;
      throw blobError(e);
    }
  }

  // Every object whose name starts with `prefix`, in name order.
  list(prefix = "") {
    const out = [];
    let after = undefined;
    for (;;) {
      const page = blob(() => listObjects(this.name, prefix, after, LIST_PAGE));
      for (const m of page.objects) out.push(objectMeta(m));
      if (page.next === undefined || page.next === null) return out;
      after = page.next;
    }
  }

  // Drops an object this attempt wrote from its output.
  discard(name) {
    blob(() => deleteObject(this.name, name));
  }

  // The published output of `task` of `workflow` for the window that
  // starts at `windowStart` (ms), as committed; undefined if none.
  output(workflow, task, windowStart) {
    const o = blob(() => windowOutput(this.name, workflow, task, BigInt(windowStart)));
    if (o === undefined || o === null) return undefined;
    return {
      runId: o.runId,
      attempt: o.attempt,
      committedAt: Number(o.committedAt),
      objects: o.objects.map((x) => ({
        name: x.name,
        key: x.key,
        size: Number(x.size),
        sha256: x.sha256,
      })),
    };
  }

  // The objects of a published window output, [name, bytes] pairs in name
  // order; empty if that window published nothing here.
  readOutput(workflow, task, windowStart) {
    const o = this.output(workflow, task, windowStart);
    if (o === undefined) return [];
    return o.objects.map((x) => [x.name, this.read(x.key)]);
  }
}

function context(raw) {
  const window = {
    start: Number(raw.window.start),
    end: Number(raw.window.end),
    timezone: raw.window.timezone,
    toString() {
      return `${this.start}..${this.end}`;
    },
  };
  const params = new Map(raw.params);
  return {
    tenant: raw.tenant,
    workflow: raw.workflow,
    task: raw.task,
    runId: raw.runId,
    window,
    attempt: raw.attempt,
    trigger: raw.trigger,
    params,
    payload: raw.payload,
    param: (name, fallback) => (params.has(name) ? params.get(name) : fallback),
  };
}

// A dataset call the host refused, mapped as the Rust SDK maps it.
function hostError(e) {
  const p = e && e.payload;
  if (p && p.tag === "invalid-name") return { tag: "fatal", val: `invalid dataset name: ${p.val}` };
  if (p && p.tag === "unavailable") return { tag: "retryable", val: `dataset unavailable: ${p.val}` };
  return undefined;
}

function taskError(e) {
  if (e instanceof Retryable) return { tag: "retryable", val: e.message };
  if (e instanceof Fatal) return { tag: "fatal", val: e.message };
  if (e instanceof HttpError) return { tag: e.transient ? "retryable" : "fatal", val: e.message };
  return hostError(e);
}

function outcome(summary) {
  return { summary: summary === undefined ? "" : String(summary) };
}

// The `run` export of the world.
export function task(run) {
  return (raw) => {
    let summary;
    try {
      summary = run(context(raw));
    } catch (e) {
      throw taskError(e) || e;
    }
    if (summary && typeof summary.then === "function") {
      return summary.then(outcome, (e) => {
        throw taskError(e) || e;
      });
    }
    return outcome(summary);
  };
}
