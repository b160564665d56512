# world: task-with-http
"""`http-json` in Python: reads a price list from an HTTP API and stores it.

GETs param `url`, which answers `{"currency": "EUR", "items": [{"sku":
"apple", "price": 120}, ...]}`, and writes each price to dataset `prices`
under its SKU. Built for the `task-with-http` world. A request the egress
policy refuses fails the attempt with a fatal `HTTP-request-denied`; a
timeout or a 5xx is retryable.
"""

import tidemark


def run(ctx: tidemark.Context) -> str:
    url = ctx.param("url")
    if url is None:
        raise tidemark.Fatal("missing required param `url`")
    prices = tidemark.http_get(url, {"accept": "application/json"})
    price_list = prices.raise_for_status().json()

    out = tidemark.Dataset("prices")
    total = 0
    for item in price_list["items"]:
        out.put_json(item["sku"], item["price"])
        total += item["price"]
    line = f"{len(price_list['items'])} prices in {price_list['currency']}, total {total}"
    tidemark.info(f"{line} from {url}")
    return line


WitWorld = tidemark.world(run)
