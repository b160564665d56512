// world: task-with-http
// `http-json` in JavaScript: reads a price list from an HTTP API and stores
// it. GETs param `url`, which answers `{"currency": "EUR", "items":
// [{"sku": "apple", "price": 120}, ...]}`, and writes each price to dataset
// `prices` under its SKU. A request the egress policy refuses fails the
// attempt with a fatal `HTTP-request-denied`; a timeout or a 5xx is
// retryable.

import * as tidemark from "../../sdk/js/tidemark.js";
import * as http from "../../sdk/js/http.js";

export const run = tidemark.task((ctx) => {
  const url = ctx.param("url");
  if (url === undefined) throw new tidemark.Fatal("missing required param `url`");
  const list = http.getJson(url);

  const prices = new tidemark.Dataset("prices");
  let total = 0;
  for (const item of list.items) {
    prices.putJson(item.sku, item.price);
    total += item.price;
  }
  const line = `${list.items.length} prices in ${list.currency}, total ${total}`;
  tidemark.log.info(`${line} from ${url}`);
  return line;
});
