//! Which windows a backfill selects, produced segment by segment from a
//! durable cursor.

use serde::{Deserialize, Serialize};

use super::Order;
use crate::schedule::{Schedule, Window};

/// The windows a backfill covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Selection {
    /// Every window whose start lies in `[start, end)`.
    Range { start: i64, end: i64 },
    /// These windows (their starts, sorted, unique).
    Windows(Vec<i64>),
}

/// How far materialization has got; stored with the backfill so a restart
/// continues exactly there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Cursor {
    /// Ascending range: the next window starts at or after this instant.
    From(i64),
    /// Descending range: the next window starts before this instant.
    Before(i64),
    /// Window list: how many have been produced.
    Taken(usize),
    Done,
}

impl Selection {
    pub fn first_cursor(&self, order: Order) -> Cursor {
        match (self, order) {
            (Selection::Range { start, .. }, Order::Asc) => Cursor::From(*start),
            (Selection::Range { end, .. }, Order::Desc) => Cursor::Before(*end),
            (Selection::Windows(_), _) => Cursor::Taken(0),
        }
    }

    /// Up to `max` next windows in `order`, and the cursor after them.
    pub fn next_segment(
        &self,
        schedule: &Schedule,
        order: Order,
        cursor: Cursor,
        max: usize,
    ) -> (Vec<Window>, Cursor) {
        let mut out = Vec::new();
        if max == 0 {
            return (out, cursor);
        }
        match (self, cursor) {
            (_, Cursor::Done) => (out, Cursor::Done),
            (Selection::Range { end, .. }, Cursor::From(from)) => {
                out.extend(schedule.windows(from, *end).take(max));
                let next = match out.last() {
                    Some(w) if out.len() == max && w.end < *end => Cursor::From(w.end),
                    _ => Cursor::Done,
                };
                (out, next)
            }
            (Selection::Range { start, .. }, Cursor::Before(before)) => {
                let mut next = schedule.tick_at_or_before(before - 1);
                while let Some(s) = next.filter(|s| *s >= *start) {
                    if let Some(last) = out.last().filter(|_| out.len() == max) {
                        let next = Cursor::Before(last.start);
                        return (out, next);
                    }
                    match schedule.window_at(s) {
                        Some(w) => out.push(w),
                        None => break,
                    }
                    next = schedule.tick_at_or_before(s - 1);
                }
                (out, Cursor::Done)
            }
            (Selection::Windows(starts), Cursor::Taken(taken)) => {
                let n = starts.len();
                let picked: Vec<i64> = match order {
                    Order::Asc => starts.iter().skip(taken).take(max).copied().collect(),
                    Order::Desc => starts.iter().rev().skip(taken).take(max).copied().collect(),
                };
                out.extend(picked.iter().filter_map(|s| schedule.window_at(*s)));
                let taken = taken + picked.len();
                (
                    out,
                    if taken >= n {
                        Cursor::Done
                    } else {
                        Cursor::Taken(taken)
                    },
                )
            }
            // A cursor of the other kind cannot come from this selection.
            _ => (out, Cursor::Done),
        }
    }
}
