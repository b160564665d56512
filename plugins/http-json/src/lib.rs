//! `http-json`: reads a price list from an HTTP API and stores it.
//!
//! GETs `url` (param), which answers `{"currency": "EUR", "items": [{"sku":
//! "apple", "price": 120}, ...]}`, and writes each price to dataset `prices`
//! under its SKU. A request the egress policy refuses fails the attempt
//! with a fatal `HTTP-request-denied`; a timeout or a 5xx is retryable.

use serde::Deserialize;
use tidemark_sdk::{export_task, http, info, Context, Dataset, Outcome, Result, Task};

#[derive(Deserialize)]
struct PriceList {
    currency: String,
    items: Vec<Item>,
}

#[derive(Deserialize)]
struct Item {
    sku: String,
    price: u64,
}

struct HttpJson;

impl Task for HttpJson {
    fn run(ctx: &Context) -> Result<Outcome> {
        let url: String = ctx.require_param("url")?;
        let list: PriceList = http::request("GET", &url, &[("accept", "application/json")], None)?
            .error_for_status()?
            .json()?;

        let prices = Dataset::new("prices");
        let mut total = 0;
        for item in &list.items {
            prices.put_json(&item.sku, &item.price)?;
            total += item.price;
        }
        let line = format!(
            "{} prices in {}, total {total}",
            list.items.len(),
            list.currency
        );
        info!("{line} from {url}");
        Ok(Outcome::summary(line))
    }
}

export_task!(HttpJson);
