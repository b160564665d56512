//! Per-attempt host state and the host side of the task world's imports,
//! with the log of dataset partitions the attempt read.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::attempt::{AttemptError, LogLine, LogSource};
use super::bindings::dataset::{DatasetError, Entry, Page};
use super::bindings::tidemark::task::{checkpoint, log, types};
use super::http::HttpState;
use super::limits::{Limiter, Limits};
use crate::run::DatasetRead;
use crate::store::{StagedOutputs, TaskData, TaskScope};

/// Longest single log line kept; the rest is cut so one line cannot eat the
/// whole budget unnoticed.
const MAX_LINE: usize = 8 << 10;
/// Most entries one `scan` call returns, whatever the guest asks for.
const MAX_SCAN: u32 = 1024;
const MAX_DATASET_NAME: usize = 128;
const MAX_KEY: usize = 1024;

/// The data of one attempt's `Store`.
pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(super) limiter: Limiter,
    pub(super) scope: TaskScope,
    pub(super) data: Arc<dyn TaskData>,
    started: Instant,
    pub(super) log: Vec<LogLine>,
    log_bytes: usize,
    pub(super) outputs: StagedOutputs,
    pub(super) limits: Limits,
    /// The first limit breach or host failure seen by a host function; it
    /// decides the attempt's error kind when the guest then traps.
    pub(super) breach: Option<AttemptError>,
    pub(super) stdout: MemoryOutputPipe,
    pub(super) stderr: MemoryOutputPipe,
    /// `wasi:http`: every request goes through the attempt's egress policy.
    pub(super) http: HttpState,
    /// `blobstore`: the attempt's staged objects.
    pub(super) blob: super::blob::BlobState,
    /// Dataset partitions read, for the run's provenance.
    pub(super) reads: ReadLog,
}

/// Marks a trap raised by a host function; the real cause is in
/// `HostState::breach`.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HostTrap(pub AttemptError);

impl HostState {
    pub fn new(
        scope: TaskScope,
        data: Arc<dyn TaskData>,
        limits: &Limits,
        cancel: &super::CancelFlag,
    ) -> Self {
        let stdout = MemoryOutputPipe::new(limits.log_bytes);
        let stderr = MemoryOutputPipe::new(limits.log_bytes);
        // Nothing is granted: no preopens, no environment, no arguments, no
        // sockets. Only the two output pipes are wired up; outbound HTTP goes
        // through `wasi:http` and the egress policy alone.
        let wasi = WasiCtx::builder()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let started = Instant::now();
        HostState {
            http: HttpState::new(
                limits.egress.clone(),
                started,
                started + limits.timeout,
                cancel.clone(),
            ),
            wasi,
            table: ResourceTable::new(),
            limiter: Limiter::new(limits),
            scope,
            data,
            started,
            log: Vec::new(),
            log_bytes: 0,
            outputs: StagedOutputs::default(),
            limits: limits.clone(),
            breach: None,
            stdout,
            stderr,
            blob: Default::default(),
            reads: Default::default(),
        }
    }

    fn elapsed_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    pub(super) fn trap(&mut self, err: AttemptError) -> wasmtime::Error {
        self.breach.get_or_insert(err.clone());
        wasmtime::Error::new(HostTrap(err))
    }

    fn push_line(&mut self, source: LogSource, mut message: String) -> wasmtime::Result<()> {
        if message.len() > MAX_LINE {
            let mut cut = MAX_LINE;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push_str(" [line truncated]");
        }
        self.log_bytes += message.len();
        if self.log_bytes > self.limits.log_bytes {
            let limit = self.limits.log_bytes;
            return Err(self.trap(AttemptError::LogLimit { limit }));
        }
        let at_ms = self.elapsed_ms();
        self.log.push(LogLine {
            at_ms,
            source,
            message,
        });
        Ok(())
    }

    pub(super) fn store_failure(
        &mut self,
        what: &str,
        err: crate::store::StoreError,
    ) -> wasmtime::Error {
        self.trap(AttemptError::Host {
            message: format!("{what}: {err}"),
        })
    }

    /// Moves captured stdout/stderr into the log, one line per line.
    pub(super) fn drain_output_pipes(&mut self) {
        let at_ms = self.elapsed_ms();
        for (source, pipe) in [
            (LogSource::Stdout, &self.stdout),
            (LogSource::Stderr, &self.stderr),
        ] {
            let bytes = pipe.contents();
            for line in String::from_utf8_lossy(&bytes).lines() {
                if !line.is_empty() {
                    self.log.push(LogLine {
                        at_ms,
                        source,
                        message: line.to_owned(),
                    });
                }
            }
        }
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl wasmtime_wasi_http::WasiHttpView for HostState {
    fn http(&mut self) -> wasmtime_wasi_http::WasiHttpCtxView<'_> {
        wasmtime_wasi_http::WasiHttpCtxView {
            ctx: &mut self.http.ctx,
            table: &mut self.table,
            hooks: &mut self.http.hooks,
        }
    }
}

impl types::Host for HostState {}

impl log::Host for HostState {
    fn write(&mut self, level: log::Level, message: String) -> wasmtime::Result<()> {
        let source = match level {
            log::Level::Trace => LogSource::Trace,
            log::Level::Debug => LogSource::Debug,
            log::Level::Info => LogSource::Info,
            log::Level::Warn => LogSource::Warn,
            log::Level::Error => LogSource::Error,
        };
        self.push_line(source, message)
    }
}

impl checkpoint::Host for HostState {
    fn save(&mut self, data: Vec<u8>) -> wasmtime::Result<Result<(), String>> {
        if data.len() > self.limits.checkpoint_bytes {
            return Ok(Err(format!(
                "checkpoint of {} bytes is larger than the limit of {} bytes",
                data.len(),
                self.limits.checkpoint_bytes
            )));
        }
        match self.data.checkpoint_save(&self.scope, &data) {
            Ok(()) => Ok(Ok(())),
            Err(e) => Err(self.store_failure("saving the checkpoint", e)),
        }
    }

    fn load(&mut self) -> wasmtime::Result<Option<Vec<u8>>> {
        match self.data.checkpoint_load(&self.scope) {
            Ok(v) => Ok(v),
            Err(e) => Err(self.store_failure("loading the checkpoint", e)),
        }
    }

    fn clear(&mut self) -> wasmtime::Result<()> {
        match self.data.checkpoint_clear(&self.scope) {
            Ok(()) => Ok(()),
            Err(e) => Err(self.store_failure("clearing the checkpoint", e)),
        }
    }
}

/// Dataset names become key components and metric labels: keep them plain.
pub fn check_dataset_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_DATASET_NAME {
        return Err(format!(
            "dataset name {name:?} must be 1 to {MAX_DATASET_NAME} bytes long"
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "._:/-".contains(*c)))
    {
        return Err(format!(
            "dataset name {name:?} contains {c:?}; allowed are A-Z a-z 0-9 . _ : / -"
        ));
    }
    Ok(())
}

fn check_key(key: &str) -> Result<(), String> {
    if key.len() > MAX_KEY {
        return Err(format!(
            "key of {} bytes is longer than {MAX_KEY}",
            key.len()
        ));
    }
    Ok(())
}

impl super::bindings::dataset::Host for HostState {
    fn put(
        &mut self,
        dataset: String,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), DatasetError>> {
        if let Err(m) = check_dataset_name(&dataset).and_then(|()| check_key(&key)) {
            return Ok(Err(DatasetError::InvalidName(m)));
        }
        if self.outputs.put(&dataset, key, value) > self.limits.output_bytes {
            let limit = self.limits.output_bytes;
            return Err(self.trap(AttemptError::OutputLimit { limit }));
        }
        Ok(Ok(()))
    }

    fn get(
        &mut self,
        dataset: String,
        partition: i64,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, DatasetError>> {
        if let Err(m) = check_dataset_name(&dataset).and_then(|()| check_key(&key)) {
            return Ok(Err(DatasetError::InvalidName(m)));
        }
        let first = self.reads.unseen(&dataset, partition);
        let with_version = first && self.reads.recording();
        let found = self
            .data
            .dataset_get_versioned(&self.scope.tenant, &dataset, partition, &key, with_version)
            .map_err(|e| DatasetError::Unavailable(e.to_string()));
        Ok(found.map(|(value, version)| {
            // A miss is a read too: the task saw the partition (or its
            // absence) as it was.
            if first {
                self.reads.note(&dataset, partition, version);
            }
            value
        }))
    }

    fn scan(
        &mut self,
        dataset: String,
        since: i64,
        until: i64,
        prefix: String,
        after: Option<(i64, String)>,
        limit: u32,
    ) -> wasmtime::Result<Result<Page, DatasetError>> {
        if let Err(m) = check_dataset_name(&dataset).and_then(|()| check_key(&prefix)) {
            return Ok(Err(DatasetError::InvalidName(m)));
        }
        let limit = limit.clamp(1, MAX_SCAN) as usize;
        let found = self.data.dataset_scan_versioned(
            &self.scope.tenant,
            &dataset,
            since..until,
            &prefix,
            after.as_ref().map(|(p, k)| (*p, k.as_str())),
            limit,
            self.reads.recording(),
        );
        let (entries, versions) = match found {
            Ok(found) => found,
            Err(e) => return Ok(Err(DatasetError::Unavailable(e.to_string()))),
        };
        // Only partitions with rows show in a scan; empty ones in its
        // range cannot be told from ones that do not exist.
        let mut versions = versions.into_iter().peekable();
        let mut last = None;
        for e in &entries {
            if last != Some(e.partition) {
                last = Some(e.partition);
                let version = versions.next_if(|(p, _)| *p == e.partition).map(|(_, v)| v);
                self.reads.note(&dataset, e.partition, version);
            }
        }
        let next = if entries.len() == limit {
            entries.last().map(|e| (e.partition, e.key.clone()))
        } else {
            None
        };
        Ok(Ok(Page {
            entries: entries
                .into_iter()
                .map(|e| Entry {
                    partition: e.partition,
                    key: e.key,
                    value: e.value,
                })
                .collect(),
            next,
        }))
    }
}

// The dataset partitions an attempt read, each with the version it saw:
// the input side of a run's provenance.

/// Most distinct partitions recorded per attempt: a task scanning years of
/// an hourly dataset must not turn its attempt record into megabytes. Reads
/// past it are counted, not named.
pub const MAX_READS: usize = 1024;

/// Partitions read so far, in `(dataset, partition)` order.
#[derive(Debug, Default)]
pub struct ReadLog {
    seen: BTreeMap<(String, i64), Option<String>>,
    omitted: u64,
}

impl ReadLog {
    /// Whether no read of `partition` of `dataset` was recorded yet. Only a
    /// first read, while [`ReadLog::recording`], asks the store for the
    /// partition's version, taken from the very read that serves the task.
    pub fn unseen(&self, dataset: &str, partition: i64) -> bool {
        !self.seen.contains_key(&(dataset.to_owned(), partition))
    }

    /// Whether new partitions are still recorded (below [`MAX_READS`]).
    pub fn recording(&self) -> bool {
        self.seen.len() < MAX_READS
    }

    /// Records the first read of `partition` of `dataset` and the version
    /// the store read it at; a distinct read past [`MAX_READS`] is counted
    /// as omitted.
    pub fn note(&mut self, dataset: &str, partition: i64, version: Option<String>) {
        let key = (dataset.to_owned(), partition);
        if self.seen.contains_key(&key) {
            return;
        }
        if self.seen.len() >= MAX_READS {
            self.omitted += 1;
            return;
        }
        self.seen.insert(key, version);
    }

    /// The reads, and how many distinct reads went unrecorded past
    /// [`MAX_READS`].
    pub fn take(&mut self) -> (Vec<DatasetRead>, u64) {
        let seen = std::mem::take(&mut self.seen);
        let reads = seen
            .into_iter()
            .map(|((dataset, partition), version)| DatasetRead {
                dataset,
                partition,
                version,
            })
            .collect();
        (reads, std::mem::take(&mut self.omitted))
    }
}
