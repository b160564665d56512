//! `orders-transform`: reads the pages `orders-extract` published for this
//! window, keeps the paid orders and writes them as JSON Lines
//! (`orders.jsonl`, one cleaned order per line, in the API's order) and a
//! `summary.json` (counts and totals per currency) to the window's output.
//!
//! Params: `extract` (the task whose output is read, default `extract`),
//! `container` (default `lake`). No pages for the window yet is
//! retryable: the upstream output may still be on its way.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tidemark_sdk::{export_task, info, Container, Context, Error, Outcome, Result, Task};

#[derive(Deserialize)]
struct Page {
    orders: Vec<Order>,
}

#[derive(Deserialize)]
struct Order {
    id: String,
    customer: String,
    amount_cents: u64,
    currency: String,
    status: String,
    created_ms: i64,
}

/// One line of `orders.jsonl`.
#[derive(Serialize)]
struct Line<'a> {
    order_id: &'a str,
    customer: &'a str,
    currency: &'a str,
    amount_cents: u64,
    /// The amount as a decimal string ("12.34"): exact, unlike a float.
    amount: String,
    created_ms: i64,
    window_start_ms: i64,
}

#[derive(Serialize)]
struct Summary {
    window_start_ms: i64,
    window_end_ms: i64,
    paid: usize,
    cancelled: usize,
    totals_cents: BTreeMap<String, u64>,
}

struct Transform;

impl Task for Transform {
    fn run(ctx: &Context) -> Result<Outcome> {
        let lake = Container::new(ctx.param("container").unwrap_or("lake"));
        let extract = ctx.param("extract").unwrap_or("extract");
        let w = ctx.window();
        let pages = lake.read_output(ctx.workflow(), extract, w.start_ms)?;
        if pages.is_empty() {
            return Err(Error::retryable(format!(
                "{extract} has no output for this window yet"
            )));
        }
        let mut jsonl = Vec::new();
        let mut summary = Summary {
            window_start_ms: w.start_ms,
            window_end_ms: w.end_ms,
            paid: 0,
            cancelled: 0,
            totals_cents: BTreeMap::new(),
        };
        // `read_output` returns the pages in name order: the API's order.
        for (name, bytes) in &pages {
            let page: Page = serde_json::from_slice(bytes)
                .map_err(|e| Error::fatal(format!("{name}: not a page of orders: {e}")))?;
            for o in page.orders {
                if o.status != "paid" {
                    summary.cancelled += 1;
                    continue;
                }
                let line = Line {
                    order_id: &o.id,
                    customer: &o.customer,
                    currency: &o.currency,
                    amount_cents: o.amount_cents,
                    amount: format!("{}.{:02}", o.amount_cents / 100, o.amount_cents % 100),
                    created_ms: o.created_ms,
                    window_start_ms: w.start_ms,
                };
                serde_json::to_writer(&mut jsonl, &line)?;
                jsonl.push(b'\n');
                summary.paid += 1;
                *summary.totals_cents.entry(o.currency.clone()).or_default() += o.amount_cents;
            }
        }
        lake.write("orders.jsonl", &jsonl)?;
        lake.write("summary.json", &serde_json::to_vec_pretty(&summary)?)?;
        let line = format!(
            "{} paid orders ({} cancelled) from {} pages",
            summary.paid,
            summary.cancelled,
            pages.len()
        );
        info!("{line}");
        Ok(Outcome::summary(line))
    }
}

export_task!(Transform);
