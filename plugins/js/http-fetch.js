// world: task-with-http
// `http-fetch`: `http-json` with the standard `fetch` instead of http.js.
// `fetch` is asynchronous, so `run` is async: componentize-js runs the
// event loop until its promise settles (a fetch left pending by a
// synchronous `run` never completes, ComponentizeJS #320). A refused
// request rejects with a bare `TypeError: NetworkError`, so this task can
// only report that the request failed, not why.

import * as tidemark from "../../sdk/js/tidemark.js";

export const run = tidemark.task(async (ctx) => {
  const url = ctx.param("url");
  if (url === undefined) throw new tidemark.Fatal("missing required param `url`");
  let resp;
  try {
    resp = await fetch(url, { headers: { accept: "application/json" } });
  } catch (e) {
    throw new tidemark.Fatal(`fetch ${url}: ${e}`);
  }
  if (!resp.ok) throw new tidemark.Fatal(`fetch ${url}: HTTP status ${resp.status}`);
  const list = await resp.json();

  const prices = new tidemark.Dataset("prices");
  let total = 0;
  for (const item of list.items) {
    prices.putJson(item.sku, item.price);
    total += item.price;
  }
  return `${list.items.length} prices in ${list.currency}, total ${total}`;
});
